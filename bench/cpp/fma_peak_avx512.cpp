#define CHAINRULE_PEAK_BYTES 64
#define CHAINRULE_PEAK_NAME chainrule_fma_peak_avx512
#include "fma_peak.inc"
