"""What every layer of netpatch shares and no layer owns: the typed errors."""
