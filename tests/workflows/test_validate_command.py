import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def validate(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "validate_workflow", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_valid_file_says_so_and_exits_0() -> None:
    result = validate("examples/offline-demo.json")
    assert result.returncode == 0
    assert result.stdout.strip() == "examples/offline-demo.json: valid"


def test_problems_are_printed_as_file_line_column_type_message(tmp_path: Path) -> None:
    spec = tmp_path / "bad.json"
    spec.write_text(
        '{\n  "name": "bad",\n  "start_node": "input",\n'
        '  "nodes": [{"id": "input", "type": "inptu"}]\n}\n'
    )
    result = validate(str(spec))
    assert result.returncode == 1
    line = next(ln for ln in result.stdout.splitlines() if "unknown_node_type" in ln)
    assert line.startswith(f"{spec}:4:37: unknown_node_type: Node 'input' has type 'inptu'")
    assert "Did you mean 'input'?" in line


def test_json_format_and_stdin() -> None:
    result = validate("-", "--format", "json", stdin='{"name": "x"}')
    assert result.returncode == 1
    body = json.loads(result.stdout)
    assert body["valid"] is False
    assert {e["path"] for e in body["errors"]} >= {"/start_node", "/nodes"}


def test_an_unreadable_file_is_a_clear_error() -> None:
    result = validate("nope.json")
    assert result.returncode == 1
    assert "Cannot read nope.json" in result.stderr
