"""epass: lift, transform and re-verify eBPF programs with the Linux verifier."""

__version__ = "0.1.0"
