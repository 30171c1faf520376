"""Nothing outside the run directory is deleted by --force or read into a report.

Each test first builds the attack a run directory from someone else could carry: a
manifest naming absolute or ``..`` paths, a folder that is a symbolic link to
elsewhere, a figure or scheme file that links out of the run.
"""

import json
import shutil

from condensa.cli import main
from condensa.cli.report import write_report
from condensa.cli.rundir import MANIFEST, RunDir


def _victim(tmp_path):
    victim = tmp_path / "elsewhere" / "precious.txt"
    victim.parent.mkdir()
    victim.write_text("not the run's")
    return victim


def test_clear_ignores_absolute_and_parent_manifest_entries(tmp_path):
    """A manifest naming /abs/path or ../x never makes clear() unlink it."""
    victim = _victim(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "journal.jsonl").write_text("")
    entries = [str(victim), f"../elsewhere/{victim.name}", "journal.jsonl"]
    (run / MANIFEST).write_text(json.dumps(entries))
    RunDir(run).clear()
    assert victim.read_text() == "not the run's"
    assert not (run / "journal.jsonl").exists(), "the run's own files still go"


def test_clear_never_follows_a_folder_link_out_of_the_run(tmp_path):
    """trials/ linked to a folder elsewhere: its files stay; the link itself may go."""
    victim = _victim(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "trials").symlink_to(victim.parent, target_is_directory=True)
    (run / MANIFEST).write_text(json.dumps([f"trials/{victim.name}"]))
    RunDir(run).clear()
    assert victim.read_text() == "not the run's"


def test_clear_removes_a_link_not_its_target(tmp_path):
    """A run file that is a symbolic link to a file elsewhere: the link goes, the file stays."""
    victim = _victim(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").symlink_to(victim)
    RunDir(run).clear()
    assert not (run / "summary.json").is_symlink()
    assert victim.read_text() == "not the run's"


def test_owned_refuses_what_leaves_the_run(tmp_path):
    """owned() answers None for absolute, '..', empty and linked-out paths; RUN/name otherwise."""
    victim = _victim(tmp_path)
    run = tmp_path / "run"
    (run / "figures").mkdir(parents=True)
    (run / "figures" / "out.png").symlink_to(victim)
    rd = RunDir(run)
    assert rd.owned(str(victim)) is None
    assert rd.owned("../elsewhere/precious.txt") is None
    assert rd.owned("") is None
    assert rd.owned("figures/out.png") is None, "a read follows the link: outside"
    assert rd.owned("figures/out.png", follow=False) == run / "figures" / "out.png"
    assert rd.owned("figures/search.png") == run / "figures" / "search.png"


def test_force_on_a_hostile_run_directory_deletes_nothing_outside(tmp_path, capsys):
    """--force over a run whose manifest names an absolute path leaves that file alone."""
    from .conftest import write_config

    victim = _victim(tmp_path)
    config = write_config(tmp_path, budget=1)
    out = tmp_path / "o"
    out.mkdir()
    (out / "config.toml").write_text('name = "someone else"\nseed = 99\n')
    (out / MANIFEST).write_text(json.dumps([str(victim), "../elsewhere/precious.txt"]))
    assert (
        main(["search", str(config), "-o", str(out), "-q", "--set", "search.budget=1", "--force"])
        == 0
    )
    assert victim.read_text() == "not the run's"


def test_report_never_embeds_a_figure_linked_out_of_the_run(finished_run, tmp_path):
    """figures/search.png and best/scheme.toml that link elsewhere are left out of the report."""
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG-SECRET-CONTENT")
    scheme_secret = tmp_path / "secret.toml"
    scheme_secret.write_text("password = 'SECRET-SCHEME'\n")
    run = tmp_path / "copy"
    shutil.copytree(finished_run, run)
    for name in (".condensa-lock", ".condensa-owner"):
        (run / name).unlink(missing_ok=True)
    (run / "figures" / "search.png").unlink(missing_ok=True)
    (run / "figures" / "search.png").symlink_to(secret)
    (run / "best" / "scheme.toml").unlink(missing_ok=True)
    (run / "best" / "scheme.toml").symlink_to(scheme_secret)
    _, html = write_report(run)
    import base64

    page = html.read_text()
    assert base64.b64encode(secret.read_bytes()).decode() not in page
    assert "SECRET-SCHEME" not in page
    assert "<h2>Baseline and chosen model</h2>" in page, "the rest of the report is written"


def test_report_of_a_run_whose_figures_folder_links_out(finished_run, tmp_path):
    """figures/ itself a link to a folder elsewhere: no chart is written there, none read."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "search.png").write_bytes(b"\x89PNG-OUTSIDE")
    run = tmp_path / "copy"
    shutil.copytree(finished_run, run)
    shutil.rmtree(run / "figures")
    (run / "figures").symlink_to(elsewhere, target_is_directory=True)
    _, html = write_report(run)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["search.png"]
    assert "PNG-OUTSIDE" not in html.read_text()
