"""pi as the integral of 4/(1+x^2) over [0, 1], by the midpoint rule."""

import getpass
import sys

steps = int(sys.argv[1])
width = 1.0 / steps
pi = sum(4.0 / (1.0 + ((i + 0.5) * width) ** 2) for i in range(steps)) * width
print(f"integrated with {steps} steps as {getpass.getuser()}")
print(f"# ccspec output pi={pi:.12f}")
print(f"# ccspec output user={getpass.getuser()}")
