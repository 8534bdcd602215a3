using System.Runtime.CompilerServices;

// ILGPU's CPU accelerator emits a dynamic assembly named "ILGPURuntime" that calls the kernels and reads their
// argument structs; kernels stay internal, so that assembly must see them.
[assembly: InternalsVisibleTo("ILGPURuntime")]
