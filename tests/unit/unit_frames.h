/* Frames of the protocol vectors (docs/PROTOCOL.md, section 12; build/tests/gen_vectors),
 * suite 0x02, headers included. The protocol_vectors test keeps the document and the
 * code in step; regenerate this file from gen_vectors when they change. */
#ifndef KD3_UNIT_FRAMES_H
#define KD3_UNIT_FRAMES_H

/* Each test uses some of them. */
#define UNIT_FRAME static const char __attribute__((unused))

/* Forward secrecy off. */
UNIT_FRAME m1_hex[] = "01010050020005616c69636503626f62a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
                      "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf00000001b2183847456d4cf746beeeeb"
                      "8217bfff94cb86c2c2b207a79af0b2fafa495b00";
UNIT_FRAME m2_hex[] = "010200960050020005616c69636503626f62a0a1a2a3a4a5a6a7a8a9aaabacad"
                      "aeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf00000001b2183847456d4cf746be"
                      "eeeb8217bfff94cb86c2c2b207a79af0b2fafa495b00b0b1b2b3b4b5b6b7b8b9"
                      "babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf00000002aa8af941b085"
                      "653dd71fc36fde327ad0a115668ab971373da070012e1062f100";
UNIT_FRAME m3_hex[] = "01030084b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacb"
                      "cccdcecf00000e10933326ec27a83201ef11cc9ab67fde8cd1a7bed58b532e0a"
                      "5be9f75f3ef6d9076fae8364a27204c1d47b1752e4c4bff0e96b10e2a309b593"
                      "b0b2556f0db0ae4d7c5e1cea9fa4a5c06cf63bd54db6ed37170c1d572774d9cb"
                      "11c9373ca73f86d8";
UNIT_FRAME m4_hex[] = "01040078b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacb"
                      "cccdcecf0000000200000e10e96b10e2a309b593b0b2556f0db0ae4d7c5e1cea"
                      "9fa4a5c06cf63bd54db6ed37170c1d572774d9cb11c9373ca73f86d8a9d4c8d8"
                      "7cfe8fb3c8fccd5247e4da6221e84666decae7f7669eea8032ed56c3";
UNIT_FRAME finished_hex[] = "011000390000000000000000c92d30f9c13f0f1468000edf3b90cbe05b84ad2b"
                            "7a6c6aad9aecf6a72de26b66ecd0ba0bab162854caad5fc52e7b62b94a";

/* Forward secrecy on. */
UNIT_FRAME m1_fs_hex[] = "01010070020105616c69636503626f62a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
                         "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf0000000179a631eede1bf9c98f12032c"
                         "deadd0e7a079398fc786b88cc846ec89af85a51ae204739ecc2acbe4df8d272b"
                         "044deb25899cc7b50abf6895a57d92d3299af680";
UNIT_FRAME m2_fs_hex[] = "010200d60070020105616c69636503626f62a0a1a2a3a4a5a6a7a8a9aaabacad"
                         "aeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf0000000179a631eede1bf9c98f12"
                         "032cdeadd0e7a079398fc786b88cc846ec89af85a51ae204739ecc2acbe4df8d"
                         "272b044deb25899cc7b50abf6895a57d92d3299af680b0b1b2b3b4b5b6b7b8b9"
                         "babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf00000002675dd574ed77"
                         "89310b3d2e7681f3790b466c773b1521fecf36577958371ea52f5d6a6af5ad07"
                         "f1e764f61823dcd1a0ca9c82dd5477ebf62d97624bbce0fb66ca";
UNIT_FRAME m4_fs_hex[] = "01040098b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacb"
                         "cccdcecf00000002675dd574ed7789310b3d2e7681f3790b466c773b1521fecf"
                         "36577958371ea52f00000e1056268f707033a2f7814c228f1ae9f00251d59910"
                         "28e0bde5060fc28797766ef9d906ca8a98935ea4bfe12dc155882a3114f8597b"
                         "f8b49a16a9a007cdd7cd1a932f1826b4e8743618eff6f776a84bee0f";

#endif
