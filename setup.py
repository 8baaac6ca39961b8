"""Packaging for DiveAnalyzer."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def read_requirements(name: str) -> list[str]:
    lines = (HERE / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def read_version() -> str:
    for line in (HERE / "diveanalyzer" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=")[1].strip().strip('"')
    raise RuntimeError("no __version__ in diveanalyzer/__init__.py")


setup(
    name="diveanalyzer",
    version=read_version(),
    description="Find every dive in a training-session video, cut clips, review them live.",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["diveanalyzer", "diveanalyzer.*"]),
    install_requires=read_requirements("requirements.txt"),
    extras_require={"test": read_requirements("requirements-test.txt")},
    entry_points={"console_scripts": ["diveanalyzer=diveanalyzer.__main__:main"]},
    include_package_data=True,
)
