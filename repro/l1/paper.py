"""QwenLong-L1's registration: the `rl` recipe section, `repro l1 ...`, the reproduction and its bench cases."""

from repro.l1.sections import RlSection
from repro.registry import Paper, register

PAPER = register(
    Paper(
        name="l1",
        title="QwenLong-L1: warm-up SFT, then curriculum-guided phased RL (GRPO or DAPO)",
        sections={"rl": RlSection},
        cli="repro.l1.cli:app",
        bench="repro.l1.bench",
    )
)
