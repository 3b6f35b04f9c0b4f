"""UDX: reliable, ordered, congestion-controlled streams over UDP (sans-IO), wire-compatible with libudx."""
