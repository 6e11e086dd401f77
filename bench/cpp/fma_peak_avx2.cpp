#define CHAINRULE_PEAK_BYTES 32
#define CHAINRULE_PEAK_NAME chainrule_fma_peak_avx2
#include "fma_peak.inc"
