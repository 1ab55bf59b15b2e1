"""Ship the crew templates and the WhatsApp bridge's sources inside the wheel.

They live at the repository's top level (see docs/architecture.md); a wheel only carries packages, so the build
copies them into `nanofolks/_shipped/`. An editable install has no copy and reads them from the checkout."""

from pathlib import Path
from shutil import copytree, ignore_patterns

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("workspace_templates", "bridge")


class BuildPyWithShipped(build_py):
    def run(self) -> None:
        super().run()
        for name in SHIPPED:
            target = Path(self.build_lib) / "nanofolks" / "_shipped" / name
            copytree(name, target, dirs_exist_ok=True,
                     ignore=ignore_patterns("node_modules", "test", "__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithShipped})
