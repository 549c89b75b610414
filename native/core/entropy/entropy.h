// Entropy coding of quantization codes (canonical Huffman and rANS) in a chunked layout. To be written.
#pragma once
