/**
 * normal-float: QLoRA's NormalFloat levels (NF4 at 4 bits): quantiles of N(0, 1) with an exact zero, normalized to
 * [-1, 1] and scaled by each slice's largest magnitude; nearest-level assignment. With granularity 'group' and
 * groupSize 64 it gives bitsandbytes' NF4 values (the codebook is stored as levels, not as one absmax scale).
 * Source: Dettmers et al., QLoRA, NeurIPS 2023, §3 and Appendix E (native/core/solvers/normal_float.cpp).
 */
import { defineMethod } from './method.js';

export const normalFloat = defineMethod({
  name: 'normal-float',
  summary: "QLoRA's NormalFloat levels (NF4 at 4 bits) scaled by each slice's absmax; the codebook stores 2^bits levels per slice",
  paper: 'Dettmers, Pagnoni, Holtzman & Zettlemoyer, QLoRA: Efficient Finetuning of Quantized LLMs, NeurIPS 2023, §3',
  exact: false,
  objective: 'grid',
  seeded: false,
  solver: () => 'normal-float',
  options: [],
  // F32 levels: absmax x NF4 as bitsandbytes decodes it (F16 codebooks, the scalar default, would round them).
  codecDefaults: { codebookDtype: 'F32' },
});
