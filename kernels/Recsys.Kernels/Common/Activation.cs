namespace Recsys.Kernels.Common;

/// <summary>Activation fused into a GEMM epilogue or applied elementwise.</summary>
public enum Activation
{
    None = 0,
    Relu = 1,
    Sigmoid = 2,
}
