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
