"""Every attacker ``poscuda audit`` trains, by name, and what it eats (importable without torch).

From scratch (attackers.py, torch): ``cnn-avg``, ``cnn-flat``, ``lstm`` and ``transformer`` on
MFCC or log-mel frames, ``raw`` on the waveform. On a frozen pretrained encoder (poscuda_cli/encoders,
the ``[encoders]`` extra), a small head (probes.py): ``kws-linear`` and ``kws-mlp`` on Google's
keyword-spotting speech embedding, ``speaker-linear`` on a speaker encoder's embedding.
"""

SCRATCH = {"cnn-avg": "mfcc", "cnn-flat": "mfcc", "raw": "wave", "lstm": "mfcc", "transformer": "logmel"}
PRETRAINED = {"kws-linear": "kws", "kws-mlp": "kws", "speaker-linear": "speaker"}
INPUTS = {**SCRATCH, **PRETRAINED}
MODELS = tuple(INPUTS)

# Without --models and --defense: every attacker as it comes, and the strongest from-scratch model
# under the standard speech recipe (docs/results.md), so that the table shows the worst case.
DEFAULT_PLAN = tuple((model, "none") for model in MODELS) + (("cnn-flat", "recipe"),)


def unknown(models):
    """The names among ``models`` that are no attacker."""
    return [name for name in models if name not in INPUTS]
