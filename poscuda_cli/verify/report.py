"""One self-contained HTML page to look at and listen to what protection did (``verify --report``).

The page holds the summary table, histograms of per-file SNR, PESQ and speaker similarity,
and for the best, median and worst files (by PESQ, else by SNR) the spectrograms of the
original, the protected clip and their difference, with players for both versions. Images
are PNG and audio is 16-bit WAV, embedded as data URIs, so the file can be mailed or archived
alone. Plots need matplotlib (the ``[quality]`` extra).
"""

import base64
import html
import io
import math
import os

import numpy as np

from .. import __version__, containers
from ..audio import mono_float, temp_name
from ..errors import MissingExtraError, printable

PLAYER_SECONDS = 30.0  # longer files are cut for the players, and the page says so


def require():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingExtraError("the report needs matplotlib: pip install 'poscuda[quality]'") from None


def write_report(report, original, protected, path, options=None):
    """Write the page for ``report`` (pairs under ``original`` and ``protected``, containers of
    containers.Options ``options`` if given) to ``path``, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    summary = report.summary()
    sections = [_summary_table(summary, original, protected), _histograms(report)]
    audio_of = _audio_of(original, protected, options)
    for title, quality in _examples(report):
        sections.append(_example(title, quality, *audio_of(quality.path)))
    sections.append(_problems(report))
    page = _PAGE.format(version=html.escape(__version__), body="\n".join(sections))
    tmp = temp_name(os.fspath(path))
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(printable(page))
    os.replace(tmp, path)


def _examples(report):
    """(title, FileQuality) for the best, median and worst file by PESQ, else by SNR."""
    key = "pesq" if any(f.pesq is not None for f in report.files) else "snr_db"
    scored = sorted((f for f in report.files if _finite(getattr(f, key))), key=lambda f: getattr(f, key))
    if not scored:
        return []
    picks = [("worst", scored[0]), ("median", scored[len(scored) // 2]), ("best", scored[-1])]
    seen, out = set(), []
    for name, quality in picks:
        if quality.path not in seen:
            seen.add(quality.path)
            label = "PESQ" if key == "pesq" else "SNR"
            out.append((f"{name} file by {label}", quality))
    return out


def _finite(value):
    return value is not None and math.isfinite(value)


def _summary_table(summary, original, protected):
    rows = [("files", f"{summary['files']} ({summary['unchanged_files']} unchanged)"),
            ("FAD", f"{summary['fad']} ({summary['embedding']} embedding)"),
            ("SNR dB", f"mean {summary['snr_db_mean']} · median {summary['snr_db_median']} · min {summary['snr_db_min']}"),
            ("LSD dB", f"mean {summary['lsd_db_mean']}"),
            ("samples changed", f"{summary['changed_fraction_mean']} (mean fraction)")]
    if "pesq_mean" in summary:
        rows.append((f"PESQ ({summary['pesq_mode'] or '-'})",
                     f"mean {summary['pesq_mean']} · median {summary['pesq_median']} · min {summary['pesq_min']} "
                     f"· {summary['pesq_measured']} measured"))
    if "stoi_mean" in summary:
        rows.append(("STOI / ESTOI", f"mean {summary['stoi_mean']} / {summary['estoi_mean']} "
                                     f"· {summary['stoi_measured']} measured"))
    if "speaker_similarity_mean" in summary:
        rows.append(("speaker similarity", f"mean {summary['speaker_similarity_mean']} · "
                                           f"min {summary['speaker_similarity_min']} · "
                                           f"{summary['speaker_measured']} measured"))
    rows.append(("not measured / errors", f"{len(summary['not_measured'])} / "
                                          f"{len(summary['errors']) + len(summary['missing']) + len(summary['extra'])}"))
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return (f"<h2>Summary</h2><p class=paths>ORIG <code>{html.escape(os.fspath(original))}</code> · "
            f"PROT <code>{html.escape(os.fspath(protected))}</code></p><table class=summary>{body}</table>")


def _histograms(report):
    import matplotlib.pyplot as plt

    series = [("SNR (dB)", [f.snr_db for f in report.files]), ("PESQ", [f.pesq for f in report.files]),
              ("speaker similarity", [f.speaker_similarity for f in report.files])]
    series = [(name, [v for v in values if _finite(v)]) for name, values in series]
    series = [(name, values) for name, values in series if values]
    if not series:
        return ""
    figure, axes = plt.subplots(1, len(series), figsize=(4.2 * len(series), 3.0), squeeze=False,
                                layout="constrained")
    for axis, (name, values) in zip(axes[0], series):
        axis.hist(values, bins=30, color="#3b6ea5")
        axis.set_title(f"{name} · {len(values)} files", fontsize=10)
        axis.set_ylabel("files")
        axis.axvline(float(np.median(values)), color="#c0392b", linewidth=1, label="median")
        axis.legend(fontsize=8)
    return f"<h2>Per-file distributions</h2>{_img(figure, 'histograms of per-file quality')}"


def _audio_of(original, protected, options):
    """A pair's name -> its ORIG and PROT audio: two paths, or two container cells' bytes."""
    if options is None:
        return lambda name: (os.path.join(original, name), os.path.join(protected, name))
    mine, theirs = containers.counterparts(original, protected, options)
    return lambda name: (containers.cell_bytes(mine, name, options), containers.cell_bytes(theirs, name, options))


def _example(title, quality, original, protected):
    """``original`` and ``protected``: the pair's two files (paths or bytes)."""
    x, info = mono_float(original, "ORIG")
    y, _ = mono_float(protected, "PROT")
    rate = info.samplerate
    scores = [f"SNR {_fmt(quality.snr_db)} dB", f"LSD {_fmt(quality.lsd_db)} dB"]
    if quality.pesq is not None:
        scores.append(f"PESQ {_fmt(quality.pesq)}")
    if quality.stoi is not None:
        scores.append(f"STOI {_fmt(quality.stoi, 3)}")
    if quality.speaker_similarity is not None:
        scores.append(f"speaker similarity {_fmt(quality.speaker_similarity, 3)}")
    cut = len(x) > PLAYER_SECONDS * rate
    players = "".join(
        f"<figure class=player><figcaption>{name}{' (first 30 s)' if cut else ''}</figcaption>"
        f"<audio controls preload=metadata src=\"data:audio/wav;base64,{_wav(path, rate)}\"></audio></figure>"
        for name, path in (("original", original), ("protected", protected)))
    return (f"<h2>{html.escape(title)}: <code>{html.escape(quality.path)}</code></h2>"
            f"<p>{html.escape(' · '.join(scores))}</p>{_spectrograms(x, y, rate)}<div class=players>{players}</div>")


def _fmt(value, digits=2):
    return "-" if not _finite(value) else f"{value:.{digits}f}"


def _spectrograms(x, y, rate):
    import matplotlib.pyplot as plt
    from scipy.signal import stft

    window = max(int(0.025 * rate), 16)
    panels = [("original", x), ("protected", y), ("difference (protected - original)", y - x)]
    powers = []
    for _, signal in panels:
        freqs, times, spectrum = stft(signal, rate, nperseg=window, noverlap=window - max(window * 2 // 5, 1))
        powers.append(10 * np.log10(np.abs(spectrum) ** 2 + 1e-12))
    top = max(float(powers[0].max()), float(powers[1].max()))
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.2), sharey=True)
    for axis, (name, _), power in zip(axes, panels, powers):
        image = axis.pcolormesh(times, freqs / 1000, power, vmin=top - 80, vmax=top, shading="auto", cmap="magma")
        axis.set_title(name, fontsize=10)
        axis.set_xlabel("time (s)")
    axes[0].set_ylabel("frequency (kHz)")
    figure.colorbar(image, ax=axes, label="dB", fraction=0.02)
    return _img(figure, "spectrograms of the original, the protected clip and their difference")


def _img(figure, alt):
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return f"<img alt=\"{html.escape(alt)}\" src=\"data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}\">"


def _wav(source, rate):
    """The first PLAYER_SECONDS of a file (its path or its bytes) as 16-bit WAV (every browser
    plays it), base64."""
    import soundfile as sf

    with sf.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else os.fsencode(source)) as handle:
        data = handle.read(frames=int(PLAYER_SECONDS * rate), dtype="int16", always_2d=True)
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, format="WAV", subtype="PCM_16")
    return base64.b64encode(buffer.getvalue()).decode()


def _problems(report):
    """Errors in full (they fail the run); files a metric could not score, grouped by reason."""
    errors = [f"missing in PROT: {p}" for p in report.missing] + [f"extra in PROT: {p}" for p in report.extra]
    errors += [f"{p}: {r}" for p, r in report.failed]
    out = ""
    if errors:
        items = "".join(f"<li>{html.escape(item)}</li>" for item in errors)
        out += f"<h2>Errors ({len(errors)})</h2><ul class=problems>{items}</ul>"
    by_reason = {}
    for path, reasons in report.not_measured:
        for reason in reasons.split("; "):
            by_reason.setdefault(reason, []).append(path)
    if by_reason:
        groups = "".join(f"<details><summary>{html.escape(reason)}: {len(paths)} files</summary>"
                         f"<p class=problems>{html.escape(', '.join(paths))}</p></details>"
                         for reason, paths in sorted(by_reason.items()))
        out += (f"<h2>Not measured ({len(report.not_measured)} files)</h2><p>Metrics that are undefined for a "
                f"clip are left out of the means, never counted as a number.</p>{groups}")
    return out


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>poscuda verify report</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; padding: 0 1em; }}
h1 {{ font-size: 1.5em; }} h2 {{ font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }}
table.summary {{ border-collapse: collapse; }}
table.summary th, table.summary td {{ text-align: left; padding: .3em 1.2em .3em 0; border-bottom: 1px solid #eee; }}
img {{ max-width: 100%; }} code {{ background: #f4f4f4; padding: 0 .2em; }}
.players {{ display: flex; gap: 2em; }} figure.player {{ margin: 0; }}
.paths, figcaption {{ color: #555; }} .problems {{ font-size: .9em; }} summary {{ cursor: pointer; }}
</style></head>
<body><h1>poscuda verify report</h1>
<p>What protection changed, file by file. PESQ runs from 1 to 4.5 (narrow-band) or 4.64 (wide-band);
STOI and speaker similarity from 0 to 1; higher is closer to the original. poscuda {version}.</p>
{body}
</body></html>
"""
