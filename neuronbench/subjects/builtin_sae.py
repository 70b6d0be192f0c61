"""Built-in SAEs: the offline default's trained SAE and its random-init control, by name.

``--site sparsify:builtin:NAME`` names one without a path, so the default run, a test and
a user's command line all mean the same weights on any machine, offline:

- ``smollm2-l12-topk`` ships inside the package (``data/sae/``, 21 MB fp32): the TopK SAE
  ``neuronbench train-sae --layer 12`` trained on SmolLM2's residual stream (its
  ``MODEL_CARD.md`` has the command, FVU and dead latents).
- ``smollm2-l12-random`` is the control: the library's seeded initialisation of the same
  shape, untrained. It is not shipped but built on first use into the cache (under a
  lock, once per cache) by the same call ``train-sae --random`` makes: it takes 0.1 s and
  is bit-identical from run to run, so 21 MB of package would only duplicate what the
  installed library computes; and a control built by the installed library is the
  library's init by construction. Its weights' sha256 is recorded in every dataset card
  (the site revision), so a torch that draws other random numbers shows as another SAE.

Both are sparsify directories (``NAME/layers.12/{cfg.json,sae.safetensors}``), so
:func:`neuronbench.subjects.sae.load_site` loads them as any sparsify checkpoint and their
latents are ``sae:NAME``.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from neuronbench.subjects.models import SubjectError

BUILTIN_PREFIX = "builtin:"
"""What follows ``sparsify:`` in a built-in site spec."""

DATA_DIR = Path(__file__).parent / "data" / "sae"
"""Shipped SAE directories."""


@dataclass(frozen=True)
class RandomSpec:
    """The random-init control: ``SparseCoder(d_in, SaeConfig(expansion, k))`` under
    ``torch.manual_seed(seed)``, saved at ``hookpoint`` (what ``train-sae --random`` does)."""

    d_in: int
    expansion: int
    k: int
    seed: int
    hookpoint: str


TRAINED = "smollm2-l12-topk"
RANDOM = "smollm2-l12-random"

SHIPPED: dict[str, str] = {TRAINED: "TopK SAE on SmolLM2-135M layer 12 (trained, shipped)"}
BUILT: dict[str, tuple[RandomSpec, str]] = {
    RANDOM: (
        RandomSpec(d_in=576, expansion=8, k=32, seed=0, hookpoint="layers.12"),
        f"random-init control of {TRAINED} (built once into the cache)",
    )
}


def builtin_names() -> list[str]:
    """Every built-in SAE name."""
    return sorted([*SHIPPED, *BUILT])


def site_spec(name: str) -> str:
    """The ``--site`` value of built-in ``name``."""
    return f"sparsify:{BUILTIN_PREFIX}{name}"


def is_builtin(raw: str) -> bool:
    """Whether the path part of a site spec (after ``sparsify:``) names a built-in SAE."""
    return raw.startswith(BUILTIN_PREFIX)


def check_builtin(spec: str, raw: str) -> str:
    """The built-in name in ``raw``; a one-line error listing the built-ins if unknown."""
    name = raw.removeprefix(BUILTIN_PREFIX)
    if name not in SHIPPED and name not in BUILT:
        from neuronbench.errors import did_you_mean

        raise SubjectError(
            f"site {spec!r}: no built-in SAE {name!r}{did_you_mean(name, builtin_names())}; "
            f"built-ins: {', '.join(site_spec(n) for n in builtin_names())}"
        )
    return name


def builtin_dir(spec: str, raw: str) -> Path:
    """The directory of the built-in SAE ``raw`` (``builtin:NAME``), building the random
    control into the cache first if needed. ``spec`` names the site in errors."""
    name = check_builtin(spec, raw)
    if name in SHIPPED:
        path = DATA_DIR / name
        if not (path / "layers.12" / "sae.safetensors").is_file():
            raise SubjectError(
                f"site {spec!r}: the package's {path} is incomplete (reinstall neuronbench)"
            )
        return path
    random_spec, _ = BUILT[name]
    return _build_random(spec, name, random_spec)


BUILD_FILE = "build.json"


def _build_random(spec: str, name: str, rs: RandomSpec) -> Path:
    from neuronbench._build_once import build_once
    from neuronbench.subjects.models import cache_root

    try:
        with contextlib.redirect_stdout(sys.stderr):  # it announces Triton on import
            import sparsify  # noqa: F401
    except ImportError:
        from neuronbench.subjects.sae import INSTALL_HINT

        raise SubjectError(f"site {spec!r} needs eai-sparsify: {INSTALL_HINT}") from None
    wanted = _build_stamp(rs)
    target = cache_root().parent / "sae" / name

    def fresh(path: Path) -> bool:
        try:
            stamp = json.loads((path / BUILD_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return stamp == wanted and (path / rs.hookpoint / "sae.safetensors").is_file()

    build_once(target, fresh, _writer(rs, wanted))
    return target


def _build_stamp(rs: RandomSpec) -> dict[str, object]:
    """What decides the random weights: the shape, the seed, and the libraries that draw them."""
    from importlib.metadata import version

    import torch

    return {**asdict(rs), "sparsify": version("eai-sparsify"), "torch": torch.__version__}


def _writer(rs: RandomSpec, stamp: dict[str, object]) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        write_random_sae(rs, tmp)
        from neuronbench._atomic import write_json

        write_json(tmp / BUILD_FILE, stamp)

    return write


def write_random_sae(rs: RandomSpec, out: Path) -> Path:
    """Write the untrained SAE of ``rs`` to ``out/<hookpoint>`` exactly as
    ``train-sae --random`` does (same call, same seeding); returns that directory."""
    import torch

    with contextlib.redirect_stdout(sys.stderr):
        from sparsify import SaeConfig, SparseCoder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(rs.seed)
        coder = SparseCoder(rs.d_in, SaeConfig(expansion_factor=rs.expansion, k=rs.k))
    coder.save_to_disk(out / rs.hookpoint)
    return out / rs.hookpoint
