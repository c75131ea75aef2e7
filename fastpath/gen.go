package fastpath

// The flags are pinned so that Debian 12's clang 14 and libbpf-dev give
// byte-identical objects; .ci/run regenerates them and fails on a
// difference. -mcpu=v3 needs kernel 5.1, far below TCX's 6.6.
//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -target bpfel -type fp_verdict -cflags "-O2 -mcpu=v3 -Wall -Werror" fastpath bpf/fastpath.c -- -I/usr/include/x86_64-linux-gnu
