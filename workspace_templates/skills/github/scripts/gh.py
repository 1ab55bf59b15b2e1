"""Run the gh CLI with the given arguments, or say clearly that it is not installed."""

import shutil
import subprocess
import sys

gh = shutil.which("gh")
if gh is None:
    print("The GitHub CLI (gh) is not installed on this machine: see https://cli.github.com to install it.")
    sys.exit(127)
sys.exit(subprocess.run([gh, *sys.argv[1:]], check=False).returncode)
