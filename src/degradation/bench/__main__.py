"""`python -m degradation.bench` (`make bench`)."""

from degradation.bench.measure import main

main()
