"""Packaging glue that pyproject.toml cannot express: the top-level ``resources/`` folder
(bundled digits, demo checkpoints, example sessions) ships inside the wheel as
``st_app/resources``, so a plain ``pip install .`` carries it. Metadata lives in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["st_app", "st_app.*"]) + ["st_app.resources"],
    package_dir={"st_app.resources": "resources"},
    package_data={"st_app.resources": ["**/*"]},
    include_package_data=False,
)
