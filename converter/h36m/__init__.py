"""Human3.6M data: dataset reading and layouts, preprocessing, metrics, the synthetic set."""
