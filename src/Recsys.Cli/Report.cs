using Recsys.Engine.Metrics;
using Recsys.Engine.Training;
using Spectre.Console;

namespace Recsys.Cli;

/// <summary>The final table of `recsys train` and `recsys eval`.</summary>
internal static class Report
{
    public static void Print(TrainJobResult r, TrainJobSpec spec)
    {
        var t = new Table().Title($"{spec.Model.Kind} on {Markup.Escape(r.DataDescription)}").AddColumn("metric").AddColumn(new TableColumn("value").RightAligned());
        var e = r.Run.Test;
        t.AddRow("test AUC", $"{e.Auc:F4} (± {e.AucStdErr:F4} s.e.)");
        if (r.PlantedTestAuc is { } p) t.AddRow("planted model's AUC (same test rows)", $"{p:F4}");
        t.AddRow("test log loss", $"{e.LogLoss:F4}");
        t.AddRow("test NE", $"{e.NormalizedEntropy:F4}");
        t.AddRow("calibration (mean pred / base rate)", $"{e.Calibration:F3}");
        t.AddRow("train / test rows", $"{r.TrainRows} / {r.TestRows}");
        t.AddRow("throughput", $"{r.Run.ExamplesPerSecond:F0} examples/s");
        t.AddRow("train time", $"{r.Run.TrainSeconds:F2} s");
        if (r.CrossValidation is { } cv)
        {
            t.AddRow($"{cv.Runs}-fold AUC", $"{cv.Auc.Mean:F4} ± {cv.Auc.Std:F4}");
            t.AddRow($"{cv.Runs}-fold log loss", $"{cv.LogLoss.Mean:F4} ± {cv.LogLoss.Std:F4}");
            t.AddRow($"{cv.Runs}-fold NE", $"{cv.NormalizedEntropy.Mean:F4} ± {cv.NormalizedEntropy.Std:F4}");
        }
        if (spec.OutDir is not null) t.AddRow("written to", Markup.Escape(spec.OutDir));
        AnsiConsole.Write(t);
    }

    public static void Print(EvaluationResult e, string title)
    {
        var t = new Table().Title(Markup.Escape(title)).AddColumn("metric").AddColumn(new TableColumn("value").RightAligned());
        t.AddRow("AUC", $"{e.Auc:F4} (± {e.AucStdErr:F4} s.e.)");
        t.AddRow("log loss", $"{e.LogLoss:F4}");
        t.AddRow("NE", $"{e.NormalizedEntropy:F4}");
        t.AddRow("calibration", $"{e.Calibration:F3}");
        t.AddRow("rows", $"{e.Count}");
        AnsiConsole.Write(t);
    }
}
