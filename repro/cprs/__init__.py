"""QwenLong-CPRS: multi-granularity compression labels and window-parallel compression bookkeeping."""
