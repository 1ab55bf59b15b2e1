from nanofolks.cli.app import main

main()
