"""``poscuda verify``: quality of a protected tree against its original (main.py), its metrics,
FAD embeddings and Fréchet distance, and the HTML report."""

from .main import PERCEPTUAL, FileQuality, Gates, Plan, Report, summary_lines, verify_trees

__all__ = ["PERCEPTUAL", "FileQuality", "Gates", "Plan", "Report", "summary_lines", "verify_trees"]
