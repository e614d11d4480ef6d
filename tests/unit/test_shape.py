"""scripts/shape.py: each rule on small made-up packages written to tmp_path."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "shape.py"
_spec = importlib.util.spec_from_file_location("klink_shape_script", SCRIPT)
shape = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = shape  # dataclasses look their module up there
_spec.loader.exec_module(shape)


def package(tmp_path: Path, files: dict[str, str]) -> Path:
    """A package `pkg` of these files (dedented), under tmp_path."""
    root = tmp_path / "pkg"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def run(tmp_path: Path, rule, files: dict[str, str]) -> list[str]:
    return rule(shape.load(package(tmp_path, files)))


def function(name: str, body_lines: int, decorators: int = 0, indent: str = "") -> str:
    """A def of 1 + body_lines lines (decorators not counted)."""
    lines = [f"{indent}@decorator{i}" for i in range(decorators)]
    lines.append(f"{indent}def {name}(x):")
    lines += [f"{indent}    x = x + {i}" for i in range(body_lines - 1)]
    lines.append(f"{indent}    return x")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- 1, 2: length


def test_a_function_over_60_lines_is_flagged_with_its_length(tmp_path):
    found = run(tmp_path, shape.long_functions, {"a.py": "\n" + function("long", 60)})
    assert found == ["pkg/a.py:2 long 61"]


def test_a_function_of_60_lines_passes_decorators_not_counted(tmp_path):
    files = {"a.py": function("short", 59, decorators=3) + function("tiny", 2)}
    assert run(tmp_path, shape.long_functions, files) == []


def test_methods_and_nested_functions_are_measured_too(tmp_path):
    nested = "def outer():\n" + function("inner", 61, indent="    ") + "    return inner\n"
    method = "class C:\n" + function("method", 70, indent="    ")
    found = run(tmp_path, shape.long_functions, {"a.py": nested, "b.py": method})
    assert found == ["pkg/a.py:1 outer 64", "pkg/a.py:2 outer.inner 62", "pkg/b.py:2 C.method 71"]


def test_a_class_over_300_lines_is_flagged_300_passes(tmp_path):
    big = "class Big:\n" + "".join(f"    a{i} = {i}\n" for i in range(300))
    fits = "class Fits:\n" + "".join(f"    a{i} = {i}\n" for i in range(299))
    found = run(tmp_path, shape.long_classes, {"a.py": big, "b.py": fits})
    assert found == ["pkg/a.py:1 Big 301"]


# ----------------------------------------------------------------------------- 3: destinations


DESTINATION_PACKAGE = {
    "destination/__init__.py": """
        from .local import LocalDestination
        from .ssh import SshDestination, is_remote

        def open_destination(spec):
            return SshDestination(spec) if is_remote(spec) else LocalDestination(spec)
        """,
    "destination/local.py": "class LocalDestination:\n    pass\n",
    "destination/ssh.py": """
        def is_remote(spec):
            return ":" in spec

        class SshDestination:
            def same(self, other):
                return isinstance(other, SshDestination)
        """,
}


def test_the_factory_and_the_defining_modules_may_choose(tmp_path):
    assert run(tmp_path, shape.destination_choices, DESTINATION_PACKAGE) == []


def test_ssh_destination_referenced_outside_the_factory_is_flagged(tmp_path):
    cli = """
        from .destination.ssh import SshDestination
        from . import destination

        def main(spec, dest):
            if destination.ssh.is_remote(spec):
                return SshDestination(spec)
            if isinstance(dest, (destination.Destination, RemoteDestination)):
                return dest
        """
    found = run(tmp_path, shape.destination_choices, {**DESTINATION_PACKAGE, "cli.py": cli})
    assert found == [
        "pkg/cli.py:2 SshDestination",
        "pkg/cli.py:6 is_remote",
        "pkg/cli.py:7 SshDestination",
        "pkg/cli.py:8 isinstance RemoteDestination",
    ]


def test_without_a_destination_package_the_references_are_still_reported(tmp_path):
    files = {"remote.py": "def is_remote(spec):\n    return True\n",
             "hooks.py": "from . import remote\n\nREMOTE = remote.is_remote('h:/x')\n"}
    assert run(tmp_path, shape.destination_choices, files) == ["pkg/hooks.py:3 is_remote"]


# ----------------------------------------------------------------------------- 4: processes


def test_subprocess_imported_outside_process_py_is_flagged(tmp_path):
    files = {
        "process.py": "import subprocess\nimport sh\nimport os\n\nos.execvp('x', ['x'])\n",
        "a.py": "import os.path\nimport subprocess as sp\n\nsp.run(['true'])\n",
        "b.py": "from multiprocessing.pool import Pool\nfrom os import fork, getcwd\nimport pty\n",
        "c.py": "import os\n\nos.system('ls')\nos.posix_spawnp\nos.path.join('a', 'b')\n",
        "d.py": "import sh\nfrom . import process\n",
    }
    assert run(tmp_path, shape.process_starts, files) == [
        "pkg/a.py:2 subprocess",
        "pkg/b.py:1 multiprocessing.pool",
        "pkg/b.py:2 os.fork",
        "pkg/b.py:3 pty",
        "pkg/c.py:3 os.system",
        "pkg/c.py:4 os.posix_spawnp",
        "pkg/d.py:1 sh",
    ]


# ----------------------------------------------------------------------------- 5: duplicates

BLOCK = [  # 9 lines of 3 tokens or more: none of them thin
    "total = 0",
    "for item in items:",
    "    if item.size > limit:",
    "        total += item.size * 2",
    "    elif item.size < 0:",
    "        raise ValueError('negative size')",
    "    log.info('item %s', item.name)",
    "seen.add(total)",
    "log.debug('done %d', total)",
]
RENAMED = [  # the same shape, other names, strings and numbers
    "acc = 10",
    "for thing in things:",
    "    if thing.weight > cap:",
    "        acc += thing.weight * 3",
    "    elif thing.weight < 1:",
    "        raise KeyError(\"bad\")",
    "    logger.warning('thing %r', thing.label)",
    "done.append(acc)",
    "logger.error('over %s', acc)",
]


def module(head: str, block: list[str], tail: str) -> str:
    """A function: its header, the block as its body, one last line of its own."""
    return "\n".join([head, *("    " + line for line in block), "    " + tail]) + "\n"


def first(block: list[str]) -> str:  # lines 1 .. len(block) + 2
    return module("def first(items, limit, scale=2):", block, "return [total, scale]")


def second(block: list[str]) -> str:
    return module("def second(items):", block, "print(items, file=sys.stderr)")


def test_an_8_line_block_repeated_is_flagged(tmp_path):
    found = run(tmp_path, shape.duplicates, {"a.py": first(BLOCK[:8]), "b.py": second(BLOCK[:8])})
    assert found == ["pkg/a.py:2-9 ~ pkg/b.py:2-9"]


def test_a_7_line_block_repeated_is_not(tmp_path):
    files = {"a.py": first(BLOCK[:7]), "b.py": second(BLOCK[:7])}
    assert run(tmp_path, shape.duplicates, files) == []


def test_a_renamed_copy_is_flagged(tmp_path):
    found = run(tmp_path, shape.duplicates, {"a.py": first(BLOCK), "b.py": second(RENAMED)})
    assert found == ["pkg/a.py:2-10 ~ pkg/b.py:2-10"]


def test_one_line_changed_in_9_still_flags_the_8_others(tmp_path):
    changed = [*BLOCK[:3], "        total = total - item.size", *BLOCK[4:]]
    found = run(tmp_path, shape.duplicates, {"a.py": first(BLOCK), "b.py": second(changed)})
    assert found == ["pkg/a.py:2-10 ~ pkg/b.py:2-10"]


def test_lines_compared_and_thin_ones(tmp_path):
    source = '''\
        """Module docstring."""
        import os
        from pathlib import (
            Path,
        )
        LIMIT = 3  # a constant: thin


        @dataclass
        class Item:
            name: str = ""

            def grow(self, by: int,
                     step: int = 1) -> None:
                # a comment
                self.size = max(
                    self.size + by * step,
                    LIMIT,
                )
                return
        '''
    mod = shape.load(package(tmp_path, {"a.py": source}))[0]
    assert [(line.row, line.shape, line.thin) for line in shape.code_lines(mod)] == [
        (6, "N = 0", True), (9, "@ N", True), (10, "class N :", True), (11, "N : N = S", True),
        (13, "def N ( N , N : N ,", False), (14, "N : N = 0 ) -> None :", True),
        (16, "N . N = N (", False), (17, "N . N + N * N ,", False), (18, "N ,", True),
        (20, "return", True),
    ]  # fmt: skip


def test_comments_blank_lines_docstrings_and_lone_punctuation_are_left_out(tmp_path):
    spread = ['"""A docstring', 'of two lines."""', "# a comment", *BLOCK[:3], "",
              "    # another", *BLOCK[3:6], "    ", *BLOCK[6:8]]  # fmt: skip
    call = ["log.info(", "    'done',", ")", "log.info(", "    'again',", ")"]
    files = {"a.py": first([*BLOCK[:8], *call]), "b.py": second([*spread, *call])}
    found = run(tmp_path, shape.duplicates, files)
    assert found == ["pkg/a.py:2-14 ~ pkg/b.py:5-20"]  # a.py's 8 + 2 lines of call, merged


def test_two_places_in_one_module_are_flagged(tmp_path):
    files = {"a.py": first(BLOCK[:8]) + "\n\n" + second(BLOCK[:8])}
    assert run(tmp_path, shape.duplicates, files) == ["pkg/a.py:2-9 ~ pkg/a.py:14-21"]


def test_dataclasses_with_similar_fields_and_constants_are_not_flagged(tmp_path):
    fields = ["name: str", "size: int = 0", "path: Path", "mode: int = 0o644",
              "owner: str = ''", "group: str = ''", "link: str | None = None",
              "checked: bool = False", "sums: tuple[str, ...] = ()"]  # fmt: skip

    def dataclass(name: str, prefix: str) -> str:
        return "@dataclass(frozen=True)\nclass " + name + ":\n" + "".join(
            f"    {prefix}{f}\n" for f in fields)  # fmt: skip

    constants = "".join(f"NAME_{i} = 'value {i}'\n" for i in range(10))
    files = {"a.py": dataclass("File", "") + constants, "b.py": dataclass("Entry", "the_")
             + constants.replace("NAME", "OTHER")}  # fmt: skip
    assert run(tmp_path, shape.duplicates, files) == []


# ----------------------------------------------------------------------------- the command


def test_main_prints_one_line_per_rule_and_fails_on_any(tmp_path, capsys):
    long = 'def long():\n    return """\n' + "text\n" * 60 + '"""\n'  # 63 lines, no repeats
    root = package(tmp_path, {"a.py": long, "process.py": "import subprocess\n"})
    assert shape.main(["shape.py", str(root)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(shape.RULES) + 1
    assert lines[0].startswith("FAIL function-length") and lines[0].endswith("pkg/a.py:1 long 63")
    assert all(line.startswith("ok ") for line in lines[1:-1])
    assert lines[-1] == "shape: 4 rules ok, 1 failed"


def test_main_passes_a_clean_package(tmp_path, capsys):
    root = package(tmp_path, {"__init__.py": "", "a.py": function("short", 5)})
    assert shape.main(["shape.py", str(root)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "shape: 5 rules ok, 0 failed"


@pytest.mark.parametrize("files", [None, {"a.py": "def broken(:\n"}])
def test_main_cannot_measure_a_missing_folder_or_broken_file(tmp_path, capsys, files):
    root = package(tmp_path, files) if files else tmp_path / "absent"
    assert shape.main(["shape.py", str(root)]) == 2
    assert capsys.readouterr().err.startswith("shape: ")
