"""Combine the Monte Carlo chunks and compare with the reference integral."""

import math
import sys

inside, samples, reference = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
estimate = 4.0 * inside / samples
error = abs(estimate - reference)
stderr = 4.0 * math.sqrt(estimate / 4 * (1 - estimate / 4) / samples)
print(f"Monte Carlo: {estimate:.5f} from {samples} points; reference: {reference:.10f}")
print(f"# ccspec output estimate={estimate:.6f}")
print(f"# ccspec output error={error:.6f}")
print(f"# ccspec output within_3_sigma={'true' if error <= 3 * stderr else 'false'}")
