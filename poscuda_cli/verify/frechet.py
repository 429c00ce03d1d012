"""The Fréchet distance between two Gaussians -- the one place FAD is computed.

    d² = |mu1 - mu2|² + tr(S1) + tr(S2) - 2 tr((S1 S2)^½)

tr((S1 S2)^½) is taken as the sum of square roots of the eigenvalues of the
symmetric matrix S1^½ S2 S1^½ (same spectrum as S1 S2), so near-singular or
slightly indefinite covariances give a real, non-negative answer instead of the
complex or negative values that scipy.linalg.sqrtm can return.
"""

import numpy as np

from ..errors import PoscudaError


def frechet_distance(mu1, sigma1, mu2, sigma2):
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    dim = mu1.shape[0]
    if mu1.shape != (dim,) or mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        shapes = f"{mu1.shape}, {sigma1.shape}, {mu2.shape}, {sigma2.shape}"
        raise PoscudaError(f"Fréchet distance: mismatched shapes {shapes}")
    for name, value in (("mean", mu1), ("mean", mu2), ("covariance", sigma1), ("covariance", sigma2)):
        if not np.isfinite(value).all():
            raise PoscudaError(f"Fréchet distance: {name} contains NaN or Inf")
    sigma1, sigma2 = (sigma1 + sigma1.T) / 2, (sigma2 + sigma2.T) / 2
    values, vectors = np.linalg.eigh(sigma1)
    root1 = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    middle = root1 @ sigma2 @ root1
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    diff = mu1 - mu2
    distance = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root
    return float(max(distance, 0.0))


def gaussian(embeddings):
    """Mean and covariance of (n, dim) embeddings."""
    embeddings = np.asarray(embeddings, np.float64)
    if embeddings.ndim != 2 or embeddings.shape[0] < 2:
        raise PoscudaError(f"need at least two embedding vectors to fit a Gaussian, got shape {embeddings.shape}")
    return embeddings.mean(axis=0), np.cov(embeddings, rowvar=False)


class Moments:
    """Count, sum and sum of outer products of embedding vectors: a Gaussian fitted in one pass,
    in memory that does not grow with the number of files. Partial moments add up."""

    def __init__(self, dim=None):
        self.count, self.total, self.outer = 0, None, None
        if dim is not None:
            self.total, self.outer = np.zeros(dim), np.zeros((dim, dim))

    def add(self, vectors):
        vectors = np.asarray(vectors, np.float64)
        if vectors.size == 0:
            return self
        if self.total is None:
            self.__init__(vectors.shape[1])
        self.count += len(vectors)
        self.total += vectors.sum(axis=0)
        self.outer += vectors.T @ vectors
        return self

    def merge(self, other):
        if other.count:
            if self.total is None:
                self.__init__(len(other.total))
            self.count += other.count
            self.total += other.total
            self.outer += other.outer
        return self

    def gaussian(self):
        """Mean and (unbiased) covariance, as :func:`gaussian` gives for the same vectors."""
        if self.count < 2:
            raise PoscudaError(f"need at least two embedding vectors to fit a Gaussian, got {self.count}")
        mean = self.total / self.count
        return mean, (self.outer - self.count * np.outer(mean, mean)) / (self.count - 1)
