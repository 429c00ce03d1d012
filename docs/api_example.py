"""The example of docs/api.md (tests/test_labels.py keeps the two identical and runs it)."""

import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

import poscuda_cli as poscuda

work = Path(tempfile.mkdtemp())
rate = 16000
t = np.arange(rate) / rate
for label, pitch in (("low", 140.0), ("high", 260.0)):  # a tiny labelled corpus
    for i in range(3):
        voice = sum(np.sin(2 * np.pi * k * pitch * (1 + 0.02 * i) * t) / k for k in range(1, 12))
        path = work / "corpus" / label / f"{label}_{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, 0.2 * voice * np.hanning(rate), rate, subtype="PCM_16")

key = poscuda.keygen(work / "k.json")                      # keep this file private
summary = poscuda.protect_tree(work / "corpus", work / "protected", key)
print(summary.to_dict()["protected"], "files protected")

report = poscuda.verify_trees(work / "corpus", work / "protected")
print("mean SNR", report.summary()["snr_db_mean"], "dB, FAD", round(report.fad, 3))

# In memory, as a Dataset's __getitem__ would do it: the same samples protect wrote.
samples, rate = sf.read(work / "corpus" / "low" / "low_0.wav")         # float64, as soundfile reads
protected = poscuda.protect_array(samples, rate, "low", key, subtype="PCM_16")
on_disk, _ = sf.read(work / "protected" / "low" / "low_0.wav")
assert np.array_equal(protected, on_disk)

# Labels from a table instead of folders (the same label names give the same bytes).
table = work / "meta.csv"
table.write_text("file,class\n" + "".join(f"{p.parent.name}/{p.name},{p.parent.name}\n"
                                         for p in sorted((work / "corpus").rglob("*.wav"))))
labels = poscuda.label_table(table, "file", "class", work / "corpus")
poscuda.protect_tree(work / "corpus", work / "by-table", key, labels=labels)
assert (work / "by-table/low/low_0.wav").read_bytes() == (work / "protected/low/low_0.wav").read_bytes()
print("ok")
