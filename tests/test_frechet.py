import numpy as np
import pytest
from scipy import linalg

from poscuda_cli.errors import PoscudaError
from poscuda_cli.verify.frechet import frechet_distance, gaussian


def random_spd(dim, seed):
    a = np.random.default_rng(seed).standard_normal((dim, dim))
    return a @ a.T + dim * np.eye(dim)


def test_identical_is_zero():
    mu, sigma = np.arange(5.0), random_spd(5, 0)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_diagonal_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_matches_scipy_sqrtm_when_well_conditioned(seed):
    s1, s2 = random_spd(8, seed), random_spd(8, seed + 100)
    mu1, mu2 = np.random.default_rng(seed).standard_normal((2, 8))
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_singular_covariances_give_a_real_non_negative_value():
    x = np.random.default_rng(0).standard_normal((3, 10))  # 3 samples in 10 dims: rank 2
    mu, sigma = gaussian(x)
    d = frechet_distance(mu, sigma, mu, sigma)
    assert isinstance(d, float) and 0.0 <= d < 1e-6
    assert frechet_distance(mu, sigma, mu + 1, np.zeros((10, 10))) >= 10.0


def test_rejects_nan_and_bad_shapes():
    with pytest.raises(PoscudaError, match="NaN"):
        frechet_distance([0.0, np.nan], np.eye(2), [0.0, 0.0], np.eye(2))
    with pytest.raises(PoscudaError, match="shapes"):
        frechet_distance([0.0, 0.0], np.eye(3), [0.0, 0.0], np.eye(2))
    with pytest.raises(PoscudaError, match="at least two"):
        gaussian(np.zeros((1, 4)))


def test_moments_in_parts_give_the_same_gaussian():
    from poscuda_cli.verify.frechet import Moments

    vectors = np.random.default_rng(3).normal(5.0, 2.0, size=(500, 6))
    whole = Moments().add(vectors)
    parts = Moments()
    for chunk in np.array_split(vectors, 7):
        parts.merge(Moments().add(chunk))
    parts.merge(Moments())  # an empty chunk changes nothing
    for mean, cov in (whole.gaussian(), parts.gaussian()):
        np.testing.assert_allclose(mean, gaussian(vectors)[0], rtol=1e-12)
        np.testing.assert_allclose(cov, gaussian(vectors)[1], rtol=1e-9, atol=1e-12)
    with pytest.raises(Exception, match="at least two"):
        Moments().add(vectors[:1]).gaussian()
