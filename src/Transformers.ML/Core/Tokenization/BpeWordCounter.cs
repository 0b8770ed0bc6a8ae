// The word counts a BPE vocabulary is learned from (the Hugging Face tokenizers approach: pre-tokenize, count words,
// then merge on the table of distinct words), gathered in one streaming pass over documents on several threads.
//
// The documents are read as the one text string.Join("\n", documents) would make, and counted exactly as GPT-2's
// pattern splits that text, without ever holding it: the stream is cut into units of about a megabyte at places where
// the pattern's pieces are known to start and end in the whole text too, and each unit is counted by itself.
// Such a place is a position p where either
//   - text[p - 1] is a letter, text[p] a space and text[p + 1] a letter: the piece before ends at p (a letter run or a
//     contraction cannot take a space), and " word" starts there;
//   - text[p - 1] is not white space, text[p] is '\n' and text[p + 1] is not white space: the piece before ends at p,
//     and "\n" alone is the next piece (the white-space run is one character and is followed by a non-space).
// Pieces never cross a unit, so the counts equal those of the whole text (a test checks them against the pattern run
// over the joined string). Memory: the distinct words per thread, and a few units in flight.
using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using System.Text;
using System.Text.RegularExpressions;

namespace Transformers.ML.Core.Tokenization;

internal static class BpeWordCounter
{
    /// <summary>Characters per unit of work.</summary>
    internal const int DefaultUnitCharacters = 1 << 20;

    /// <summary>
    /// The GPT-2 pieces of <paramref name="documents"/> joined by "\n", with their counts. <paramref name="threads"/>:
    /// counting threads (0: one per core). The documents are enumerated once, in order, on the calling thread.
    /// </summary>
    public static Dictionary<string, int> Count(IEnumerable<string> documents, int threads = 0, int unitCharacters = DefaultUnitCharacters)
    {
        ArgumentNullException.ThrowIfNull(documents);
        int workers = threads > 0 ? threads : Math.Max(1, Environment.ProcessorCount);
        using var units = new BlockingCollection<string>(boundedCapacity: 2 * workers);
        using var failed = new CancellationTokenSource();
        var tables = new Dictionary<string, int>[workers];
        Task[] counting = Enumerable.Range(0, workers).Select(w => Task.Run(() =>
        {
            try
            {
                var table = new Dictionary<string, int>(StringComparer.Ordinal);
                foreach (string unit in units.GetConsumingEnumerable(failed.Token))
                {
                    CountUnit(unit, table);
                }
                tables[w] = table;
            }
            catch (Exception) when (!failed.IsCancellationRequested)
            {
                failed.Cancel(); // the reader stops adding; the error comes out of WaitAll
                throw;
            }
        })).ToArray();
        ExceptionDispatchInfo? reading = null; // the documents' own error (a bad row, a cancelled Fit): it comes out as it is
        try
        {
            Split(documents, unitCharacters, unit => units.Add(unit, failed.Token));
        }
        catch (OperationCanceledException) when (failed.IsCancellationRequested)
        {
            // a counting thread failed: its exception follows
        }
        catch (Exception e)
        {
            reading = ExceptionDispatchInfo.Capture(e);
            failed.Cancel(); // stop the counting threads before the queue they read is disposed
        }
        finally
        {
            units.CompleteAdding();
        }
        try
        {
            Task.WaitAll(counting);
        }
        catch (AggregateException) when (reading is not null)
        {
            // the counting threads stopped because reading failed
        }
        catch (AggregateException e) when (e.InnerExceptions.FirstOrDefault(x => x is not OperationCanceledException) is Exception cause)
        {
            throw new InvalidOperationException($"Counting the words of the BPE training text failed: {cause.Message}", cause);
        }
        reading?.Throw();
        Dictionary<string, int> total = tables[0];
        for (int w = 1; w < workers; w++)
        {
            foreach ((string word, int count) in tables[w])
            {
                total[word] = checked(total.GetValueOrDefault(word) + count);
            }
        }
        return total;
    }

    /// <summary>Counts the pieces of one unit into <paramref name="table"/> (no string made for a word already there).</summary>
    internal static void CountUnit(string unit, Dictionary<string, int> table)
    {
        Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> lookup = table.GetAlternateLookup<ReadOnlySpan<char>>();
        foreach (ValueMatch match in ByteLevelBpe.Gpt2Pattern().EnumerateMatches(unit))
        {
            ReadOnlySpan<char> word = unit.AsSpan(match.Index, match.Length);
            lookup[word] = lookup.TryGetValue(word, out int count) ? checked(count + 1) : 1;
        }
    }

    /// <summary>Cuts the joined text of <paramref name="documents"/> into units at safe places (see the file's comment).</summary>
    internal static void Split(IEnumerable<string> documents, int unitCharacters, Action<string> emit)
    {
        var pending = new StringBuilder();
        bool first = true;
        foreach (string document in documents)
        {
            if (!first)
            {
                pending.Append('\n');
            }
            first = false;
            ArgumentNullException.ThrowIfNull(document, nameof(documents));
            for (int start = 0; start < document.Length; start += unitCharacters)
            {
                pending.Append(document, start, Math.Min(unitCharacters, document.Length - start));
                if (pending.Length >= unitCharacters)
                {
                    Cut(pending, emit);
                }
            }
        }
        if (pending.Length > 0 || !first)
        {
            emit(pending.ToString());
        }
    }

    /// <summary>Emits <paramref name="pending"/> up to its last safe place and keeps the rest (nothing when it has none yet).</summary>
    private static void Cut(StringBuilder pending, Action<string> emit)
    {
        // The last safe position p with p + 1 inside the buffer: the character after p must be known.
        for (int p = pending.Length - 2; p > 0; p--)
        {
            char before = pending[p - 1], at = pending[p], after = pending[p + 1];
            bool space = at == ' ' && char.IsLetter(before) && char.IsLetter(after) && !char.IsSurrogate(before) && !char.IsSurrogate(after);
            bool line = at == '\n' && !char.IsWhiteSpace(before) && !char.IsWhiteSpace(after) && !char.IsLowSurrogate(after);
            if (space || line)
            {
                emit(pending.ToString(0, p));
                pending.Remove(0, p);
                return;
            }
        }
    }
}
