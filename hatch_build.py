"""Build hook: compile mpconnect's C accelerator, ``core/mpconnect/_speedups.c``.

The accelerator is optional. Where no C compiler (or no Python headers) is found, the
build goes on without it and prints why; mpconnect then runs its Python path alone, with
the same results (see ``mpconnect.event_lines``). ``MPCONNECT_NO_COMPILE=1`` skips it.

An editable install puts the compiled module next to the source (``core/mpconnect/``,
ignored by git); a wheel carries it and is tagged for this Python and platform.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("core") / "mpconnect" / "_speedups.c"
MODULE = "mpconnect._speedups"


def compile_speedups(source: Path, out_dir: Path) -> Path:
    """Compile ``source`` into ``out_dir``; return the module's path (setuptools picks
    the compiler, flags and file name of this Python and platform)."""
    from setuptools import Distribution, Extension

    distribution = Distribution(
        {"name": "mpconnect-speedups", "ext_modules": [Extension(MODULE, [str(source)])]}
    )
    command: Any = distribution.get_command_obj("build_ext")
    command.build_lib = str(out_dir)
    command.build_temp = str(out_dir / "temp")
    command.ensure_finalized()
    command.run()
    [built] = command.get_outputs()
    return Path(built)


class SpeedupsBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compiles the accelerator into the wheel, or next to the source for an editable
    install; a failed compile leaves a pure-Python build."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Compile before the files are collected (hatchling calls this first)."""
        if os.environ.get("MPCONNECT_NO_COMPILE", "").strip() not in ("", "0"):
            return
        source = Path(self.root) / SOURCE
        work = self._work = Path(tempfile.mkdtemp(prefix="mpconnect-speedups-"))
        try:
            built = compile_speedups(source, work)
        except Exception as exc:  # any failure: build without it
            print(
                f"mpconnect: the C accelerator was not compiled ({type(exc).__name__}: "
                f"{exc}); mpconnect runs its Python path alone (slower, same results)",
                file=sys.stderr,
            )
            return
        if version == "editable":
            # Replaced, never rewritten in place: a running process may have it mapped.
            staged = source.parent / f".{built.name}.new"
            shutil.copyfile(built, staged)
            os.replace(staged, source.parent / built.name)
            return
        build_data["force_include"][str(built)] = f"mpconnect/{built.name}"
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        """Remove the compiler's work folder once the wheel is written."""
        work = getattr(self, "_work", None)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
