from bnlab import environment


def test_pins_are_read_from_requirements():
    pins = environment.pinned_versions()
    assert pins["torch"] == "2.13.0" and "nbval" in pins


def test_this_environment_passes(capsys):
    assert environment.check_environment()
    assert "Ready to go." in capsys.readouterr().out


def test_missing_and_mismatched_packages_are_named_in_plain_words(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy==0.0.1\nno-such-package-bnlab==1.0\n# a comment\n-e .\n")
    ok, lines = environment.environment_report(requirements)
    assert not ok
    assert any("numpy is" in line and "tested with 0.0.1" in line for line in lines)
    assert any("no-such-package-bnlab is missing" in line for line in lines)


def test_no_requirements_file_is_explained(tmp_path):
    ok, lines = environment.environment_report(tmp_path / "absent.txt")
    assert ok and any("not found" in line for line in lines)


def test_minimum_python_is_the_same_everywhere_and_every_pin_accepts_it():
    """numpy 2.4 needs Python 3.11: a minimum below a pinned package's own floor cannot install."""
    import importlib.metadata
    import re
    from pathlib import Path

    from packaging.specifiers import SpecifierSet

    root = Path(environment.__file__).resolve().parents[1]
    minimum = "{}.{}".format(*environment.MIN_PYTHON)
    pyproject = (root / "pyproject.toml").read_text()
    assert re.search(r'^requires-python = "(.+)"$', pyproject, re.M).group(1) == f">={minimum}"
    readme = (root / "README.md").read_text()
    assert f"Python {minimum} or newer" in readme
    assert not re.search(r"Python 3\.\d+ or newer", readme.replace(f"Python {minimum} or newer", ""))
    assert f"(Python >= {minimum})" in (root / "requirements.txt").read_text()
    for package in environment.pinned_versions():
        floor = importlib.metadata.metadata(package).get("Requires-Python")
        if floor:
            assert SpecifierSet(floor).contains(f"{minimum}.0"), (package, floor)


def test_too_old_python_is_named(monkeypatch):
    monkeypatch.setattr(environment, "MIN_PYTHON", (99, 0))
    ok, lines = environment.environment_report()
    assert not ok and "the course needs Python 99.0 or newer" in lines[0]
