using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace Recsys.Perf;

/// <summary>Achieved GFLOP/s: the FLOPs of a benchmark case (null when it has none) over its mean time.</summary>
internal sealed class GflopsColumn(string flopsFormula, Func<BenchmarkCase, double?> flopsOf) : IColumn
{
    public string Id => nameof(GflopsColumn);
    public string ColumnName => "GFLOP/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => $"Achieved single-precision GFLOP/s ({flopsFormula} / mean)";
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var mean = summary[benchmarkCase]?.ResultStatistics?.Mean;
        return flopsOf(benchmarkCase) is { } flops && mean is > 0
            ? (flops / mean.Value).ToString("F1", System.Globalization.CultureInfo.InvariantCulture) // flops per ns = GFLOP/s
            : "-";
    }
}
