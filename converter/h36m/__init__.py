"""Human3.6M: dataset reading, preprocessing, metrics, evaluation, synthetic set, pictures."""
