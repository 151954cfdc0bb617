"""QwenLong-CPRS's registration: the `cprs` recipe section, `repro cprs ...`, the reproduction and its bench cases."""

from repro.cprs.sections import CprsSection
from repro.registry import Paper, register

PAPER = register(
    Paper(
        name="cprs",
        title="QwenLong-CPRS: a compressor with bidirectional upper layers and a token critic",
        sections={"cprs": CprsSection},
        cli="repro.cprs.cli:app",
        bench="repro.cprs.bench",
    )
)
