"""sys.exit(0) while being imported: used to end ``bogc-ref verify`` with exit 0, no report."""

import sys

import bogc_ref

calibrate = bogc_ref.calibrate
sys.exit(0)
