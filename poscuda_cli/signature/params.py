"""Protection parameters: the public half of a key, with their ranges and presets.

Every field is validated here, so a key file, a ``--param`` override and a
preset all go through one gate and errors name the field.
"""

from dataclasses import asdict, dataclass, fields

from ..errors import KeyFileError

FILTERS = ("lowpass", "bandstop")
SPACINGS = ("hz", "mel")
LAYOUTS = ("offsets", "fractions", "onset", "tile", "whole")


@dataclass(frozen=True)
class Params:
    """The defaults are the default level, ``balanced``. They are for new keys only: a key file
    lists every field, and an older key's missing fields take that version's values (key.py)."""

    # filter family: "lowpass" = the paper's random non-negative taps,
    # "bandstop" = per-label notches (linear-phase FIR, designed per sample rate)
    filter: str = "bandstop"
    taps: int = 9  # lowpass: filter length in samples
    blur: float = 0.3  # lowpass: taps drawn from U(0, blur) ...
    pin: bool = True  # ... with the centre tap pinned to 1 before normalising (CUDA)
    notches: int = 6  # bandstop: notches per label
    notch_low_hz: float = 1200.0  # bandstop: notch centres are drawn in [low, high]
    notch_high_hz: float = 7600.0
    notch_width_hz: float = 200.0  # with mel spacing: the width of a notch at 1 kHz
    notch_spacing: str = "mel"  # "mel": centres even in mel up to 0.95 x Nyquist, widths growing with the mel band
    depth: float = 1.0  # bandstop: 1 removes the band, 0 leaves the clip unchanged
    filter_ms: float = 32.0  # bandstop: FIR length in milliseconds
    low_notches: int = 0  # bandstop: more notches per label, in the loud low band ...
    low_notch_low_hz: float = 200.0  # ... with centres drawn in [low, high] ...
    low_notch_high_hz: float = 1000.0
    low_notch_width_hz: float = 150.0  # ... and this width
    echoes: int = 0  # comb stages per label (x + gain * x delayed), after the family's filter
    echo_gain: float = 0.5
    echo_min_ms: float = 1.0  # per-label delays drawn in [min, max]
    echo_max_ms: float = 5.0
    # where the filtered samples go (see layout.py)
    layout: str = "whole"
    patches: int = 4
    patch_ms: float = 50.0
    frame_s: float = 1.0  # offsets: patches start inside the first frame_s seconds
    period_min_ms: float = 100.0  # tile: per-label period drawn in [min, max]
    period_max_ms: float = 200.0
    fit_snr_db: float = 15.0  # keygen --fit: the quality budget (mean SNR per label) of learned filters

    def validate(self):
        def need(ok, name, why):
            if not ok:
                raise KeyFileError(f"key parameter {name!r}={getattr(self, name)!r}: {why}")

        need(self.filter in FILTERS, "filter", f"must be one of {', '.join(FILTERS)}")
        need(self.layout in LAYOUTS, "layout", f"must be one of {', '.join(LAYOUTS)}")
        need(1 <= self.taps <= 255, "taps", "must be in 1..255")
        need(0.0 < self.blur <= 10.0, "blur", "must be in (0, 10]")
        need(1 <= self.notches <= 16, "notches", "must be in 1..16")
        need(20.0 <= self.notch_low_hz < self.notch_high_hz, "notch_low_hz",
             "must be >= 20 and below notch_high_hz")
        need(self.notch_high_hz <= 20000.0, "notch_high_hz", "must be <= 20000")
        need(10.0 <= self.notch_width_hz <= 2000.0, "notch_width_hz", "must be in [10, 2000]")
        need(self.notch_spacing in SPACINGS, "notch_spacing", f"must be one of {', '.join(SPACINGS)}")
        need(0.0 < self.depth <= 1.0, "depth", "must be in (0, 1]")
        need(2.0 <= self.filter_ms <= 200.0, "filter_ms", "must be in [2, 200]")
        need(0 <= self.low_notches <= 16, "low_notches", "must be in 0..16")
        need(20.0 <= self.low_notch_low_hz < self.low_notch_high_hz, "low_notch_low_hz",
             "must be >= 20 and below low_notch_high_hz")
        need(self.low_notch_high_hz <= 20000.0, "low_notch_high_hz", "must be <= 20000")
        need(10.0 <= self.low_notch_width_hz <= 2000.0, "low_notch_width_hz", "must be in [10, 2000]")
        need(0 <= self.echoes <= 4, "echoes", "must be in 0..4")
        need(0.0 < self.echo_gain <= 1.0, "echo_gain", "must be in (0, 1]")
        need(0.1 <= self.echo_min_ms <= self.echo_max_ms, "echo_min_ms", "must be >= 0.1 and <= echo_max_ms")
        need(self.echo_max_ms <= 50.0, "echo_max_ms", "must be <= 50")
        need(1 <= self.patches <= 64, "patches", "must be in 1..64")
        need(1.0 <= self.patch_ms <= 10000.0, "patch_ms", "must be in [1, 10000]")
        need(0.01 <= self.frame_s <= 3600.0, "frame_s", "must be in [0.01, 3600]")
        need(1.0 <= self.period_min_ms <= self.period_max_ms, "period_min_ms",
             "must be >= 1 and <= period_max_ms")
        need(self.period_max_ms <= 60000.0, "period_max_ms", "must be <= 60000")
        need(0.0 < self.fit_snr_db <= 60.0, "fit_snr_db", "must be in (0, 60]")
        return self

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data, defaults=None):
        """Parameters from a key file's ``params``: every field must be there, except those
        ``defaults`` gives (an older key's, pinned in key.py: never this dataclass's defaults)."""
        if not isinstance(data, dict):
            raise KeyFileError("key field 'params' must be an object")
        known = {f.name: f.type.__name__ for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise KeyFileError(f"key field 'params' has unknown parameter(s): {', '.join(unknown)}")
        given = {**(defaults or {}), **data}
        missing = [name for name in known if name not in given]
        if missing:
            raise KeyFileError(f"key field 'params' lacks parameter(s): {', '.join(missing)}")
        return cls(**{k: _coerce(k, v, known[k]) for k, v in given.items()}).validate()

    def with_overrides(self, pairs):
        """Apply ``name=value`` strings (the CLI's ``--param``)."""
        updates = {}
        for pair in pairs:
            name, sep, value = pair.partition("=")
            if not sep:
                raise KeyFileError(f"--param {pair!r}: expected NAME=VALUE")
            updates[name.strip()] = value.strip()
        return Params.from_dict({**self.to_dict(), **updates})


def _coerce(name, value, type_name):
    """Turn JSON or command-line values into the field's type, naming the field on failure."""
    try:
        if type_name == "bool":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            if not isinstance(value, bool):
                raise ValueError(value)
            return value
        if type_name == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if type_name == "float":
            if isinstance(value, bool):
                raise ValueError(value)
            number = float(value)
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError(value)
            return number
        return str(value)
    except (TypeError, ValueError):
        raise KeyFileError(f"key parameter {name!r}={value!r}: not a valid {type_name}") from None


# The strength levels: for each quality budget on FSDD (mean over keys), the strongest parameter set
# the sweep found inside it (docs/results.md). Notches are mel-spaced, so 16-48 kHz audio is covered too.
_MEL = dict(filter="bandstop", notch_spacing="mel", notch_high_hz=7600.0, layout="whole")
STRENGTHS = {
    # mean SNR >= 25 dB: two narrow notches above 2 kHz
    "gentle": Params(**_MEL, notches=2, notch_low_hz=2000.0, notch_width_hz=100.0),
    # mean SNR >= 15 dB and PESQ >= 4.0: six notches from 1.2 kHz (the dataclass's defaults)
    "balanced": Params(**_MEL, notches=6, notch_low_hz=1200.0, notch_width_hz=200.0),
    # PESQ >= 3.5: six wider notches, three in the loud low band, and an echo (for raw-waveform models)
    "strong": Params(**_MEL, notches=6, notch_low_hz=1000.0, notch_width_hz=250.0, low_notches=3,
                     low_notch_width_hz=120.0, echoes=1, echo_gain=0.4),
}

# The paper's form of PosCUDA (random low-pass taps in per-label patches at key offsets),
# kept as a named mode so results can be compared with the default.
PRESETS = {
    "paper": Params(filter="lowpass", taps=9, blur=0.3, pin=True, layout="offsets",
                    patches=4, patch_ms=50.0, frame_s=1.0),
}
