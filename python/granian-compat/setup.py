"""Adds mica_granian.pth beside the packages: site.py then appends site-packages/mica_granian (the
shim's `granian` package) to the end of sys.path."""

import os

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithPth(build_py):
    def run(self):
        super().run()
        self.copy_file("mica_granian.pth", os.path.join(self.build_lib, "mica_granian.pth"))


setup(cmdclass={"build_py": BuildWithPth})
