"""The on-disk layout of one workspace (a folder under ``cache/``) and atomic file writes.

Every write goes to a temporary file in the target folder and is renamed into place, so a crash never leaves a
half-written file that a later read takes for whole.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from hyperrep import __version__

logger = logging.getLogger(__name__)

CACHE_DIR = Path(os.environ.get("HYPERREP_CACHE", "cache"))


def workspace_path(name_or_path: str | Path) -> Path:
    """Resolve a workspace name (a folder under ``cache/``) or an explicit path to a folder path.

    A bare name such as ``demo`` always means ``cache/demo``, whatever the current folder holds. A path with a
    folder separator (``./demo``, ``runs/demo``) or an absolute path is used as given.
    """
    text = str(name_or_path)
    path = Path(name_or_path)
    if path.is_absolute() or len(path.parts) > 1 or "/" in text or os.sep in text:
        return path
    return CACHE_DIR / path


def list_workspaces(cache_dir: str | Path | None = None) -> list[str]:
    """List the workspace folders under ``cache_dir`` (default ``cache/``) that hold a zoo."""
    root = Path(cache_dir) if cache_dir is not None else CACHE_DIR
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "zoo" / "config.json").is_file())


def _read_umask() -> int:
    """Return the process's file mode creation mask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Read once at import: os.umask has no read-only form, and setting it while app threads write files would race.
_UMASK = _read_umask()


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    # mkstemp creates the file with mode 0600; give it the mode a plain open() would, so others sharing the cache
    # can read it.
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def provenance() -> dict[str, str]:
    """Return the code version and torch version that an artefact records beside its config."""
    return {"hyperrep_version": __version__, "torch_version": torch.__version__}


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` (a dict or dataclass) as indented JSON, atomically."""
    data = asdict(obj) if is_dataclass(obj) else obj
    text = json.dumps(data, indent=2, sort_keys=True, default=str)
    _atomic_write(Path(path), lambda tmp: tmp.write_text(text + "\n"))


def write_text(path: str | Path, text: str) -> None:
    """Write a text file (UTF-8), atomically."""
    _atomic_write(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


# How to rebuild an artefact, by the workspace folder it lives in.
_REBUILD = {
    "models": "delete it and rerun `hyperrep zoo` with the same options: the build resumes and retrains only the "
              "models whose files are missing",
    "zoo": "rerun `hyperrep zoo` with the same options in a new workspace",
    "encoders": "delete the encoder's folder and retrain it with `hyperrep train`, then `hyperrep embed`",
    "embeddings": "delete it and rerun `hyperrep embed`",
    "projections": "delete it and rerun `hyperrep project`",
    "samples": "delete the run's folder and sample again",
    "reports": "delete it and rerun the report command",
}


def rebuild_hint(path: str | Path) -> str:
    """Return how to replace a corrupt artefact at ``path``, from the workspace folder that contains it."""
    for part in reversed(Path(path).parts[:-1]):
        if part in _REBUILD:
            return _REBUILD[part]
    return "delete it and rebuild it"


def read_json(path: str | Path) -> Any:
    """Read a JSON file, raising a clear error if it is missing or invalid."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}): {rebuild_hint(path)}") from err


def write_parquet(path: str | Path, df: pd.DataFrame) -> None:
    """Write a table as parquet, atomically."""
    _atomic_write(Path(path), lambda tmp: df.to_parquet(tmp, index=False))


def read_parquet(path: str | Path) -> pd.DataFrame:
    """Read a parquet table, raising a clear error if it is missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise ValueError(f"{path} is not a readable parquet file ({err}): {rebuild_hint(path)}") from err


def write_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write tensors as safetensors, atomically. Tensors are made contiguous and moved to the CPU."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    _atomic_write(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def read_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file, raising a clear error if it is missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises SafetensorError and others on corrupt headers
        raise ValueError(f"{path} is not a valid safetensors file ({err}): {rebuild_hint(path)}") from err


class Workspace:
    """Paths of one workspace's artefacts.

    Layout::

        <root>/zoo/config.json            ZooConfig and provenance
        <root>/zoo/table.parquet          one row per model x epoch
        <root>/zoo/models/<model_id>.safetensors   every epoch's state_dict, keys "<epoch>/<param>"
        <root>/encoders/<name>/           encoder config.json, checkpoint.safetensors, history.parquet
        <root>/embeddings/<encoder>.parquet        latent per model_id x epoch
        <root>/projections/<key>.parquet           UMAP coordinates and clusters, keyed by their parameters
        <root>/samples/<key>/             decoded weights and their evaluations
        <root>/reports/                   probe and generation reports
        <root>/jobs.sqlite                job queue
    """

    def __init__(self, name_or_path: str | Path):
        self.root = workspace_path(name_or_path)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def zoo_dir(self) -> Path:
        return self.root / "zoo"

    @property
    def encoders_dir(self) -> Path:
        return self.root / "encoders"

    @property
    def embeddings_dir(self) -> Path:
        return self.root / "embeddings"

    @property
    def projections_dir(self) -> Path:
        return self.root / "projections"

    @property
    def samples_dir(self) -> Path:
        return self.root / "samples"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def jobs_db(self) -> Path:
        return self.root / "jobs.sqlite"

    def encoder_dir(self, encoder_name: str) -> Path:
        return self.encoders_dir / encoder_name

    def has_zoo(self) -> bool:
        return (self.zoo_dir / "table.parquet").is_file()

    def check_folder(self, fix: str | None = None) -> None:
        """Raise NotADirectoryError when the root, or a folder above it, is a file, so no workspace can be there.

        ``fix`` ends the message with what to do instead. The default suits the command line: give a
        folder path or a workspace name under ``cache/``.
        """
        fix = fix or f"give a folder path or a workspace name under {CACHE_DIR}/"
        if self.root.is_file():
            raise NotADirectoryError(f"workspace path {self.root} is a file, not a workspace folder: {fix}")
        for parent in self.root.parents:
            if parent.is_file():
                raise NotADirectoryError(
                    f"workspace path {self.root} is inside {parent}, which is a file, not a folder: {fix}"
                )

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"
