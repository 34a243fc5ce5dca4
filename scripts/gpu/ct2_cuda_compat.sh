#!/bin/bash
# Source this on the accelerator machine before importing ctranslate2 there.
# The CTranslate2 wheels on PyPI are built against CUDA 12 and dlopen libcublas.so.12; the accelerator
# image ships CUDA 13 only (inside PyTorch's nvidia/cu13 wheel folder). A soname link to cuBLAS 13 lets
# CTranslate2 run there (seen working for Whisper generate on an H100). cuDNN 9 comes from the same folder.
L=$(python3 -c 'import nvidia, os; print(os.path.join(os.path.dirname(nvidia.__path__[0]), "nvidia", "cu13", "lib"))' 2>/dev/null)
[ -d "$L" ] || L=/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib
if [ ! -e "$L/libcublas.so.13" ]; then
    echo "ct2_cuda_compat: no libcublas.so.13 under $L; CTranslate2 will not find cuBLAS" >&2
fi
mkdir -p /tmp/cu12-compat
ln -sf "$L/libcublas.so.13" /tmp/cu12-compat/libcublas.so.12
ln -sf "$L/libcublasLt.so.13" /tmp/cu12-compat/libcublasLt.so.12
export LD_LIBRARY_PATH=/tmp/cu12-compat:$L:${LD_LIBRARY_PATH:-}
