namespace Transformers.ML.Translation;

/// <summary>
/// One translation of a sentence and the score beam search ranked it by: the sum of its tokens' log-probabilities (the end
/// token's included) divided by the length penalty ((5 + length) / 6)^alpha, its length counting the end token (Wu et al.
/// 2016). Higher is better; 0 is the most a translation can score. An empty or whitespace-only sentence has one empty
/// translation scored 0. A text translated sentence by sentence (<see cref="TranslationTransformer.SplitSentences"/>)
/// scores the sum of its sentences' scores.
/// </summary>
/// <param name="Text">The translation.</param>
/// <param name="Score">Its length-normalised log-probability under the model.</param>
public sealed record TranslationCandidate(string Text, double Score);
