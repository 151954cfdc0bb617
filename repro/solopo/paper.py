"""SoLoPO's registration: the `solopo` recipe section, `repro solopo ...`, the reproduction and its bench cases."""

from repro.registry import Paper, register
from repro.solopo.sections import SoloPoSection

PAPER = register(
    Paper(
        name="solopo",
        title="SoLoPO: short-context preference optimisation with short-to-long reward alignment",
        sections={"solopo": SoloPoSection},
        # keys split or renamed because their meaning changed: an old recipe stops rather than run on another scale
        renamed_keys={
            "solopo.beta": "each algorithm has its own scale now: solopo.dpo_beta (DPO, 0.1) or solopo.simpo_beta "
            "(SimPO, 2.5); ORPO's reward takes none",
            "solopo.gamma": "SimPO's margin is now solopo.simpo_gamma_beta_ratio (gamma / beta, 0.55)",
            "solopo.lam": "ORPO's weight is now solopo.orpo_lambda",
        },
        cli="repro.solopo.cli:app",
        bench="repro.solopo.bench",
    )
)
