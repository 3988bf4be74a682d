"""Adds mica_granian.pth beside the packages: site.py runs its `import _mica_granian` at every
start-up of the virtualenv's Python."""

import os

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithPth(build_py):
    def run(self):
        super().run()
        self.copy_file("mica_granian.pth", os.path.join(self.build_lib, "mica_granian.pth"))


setup(cmdclass={"build_py": BuildWithPth})
