"""The search engine core shared by segqc-hw, msnas-hw and rtdnas.

ops (candidate + fixed operators with latency keys) -> mixed (mixed ops, partial channels) -> cells
-> supernets/ (search networks) ; genotypes (frozen, JSON) ; decode (weights -> genotype, top-n paths)
-> derived/ (networks built from a genotype, ONNX-exportable) ; estimators (differentiable latency)
; latency_sites (which table keys a network needs).
"""
