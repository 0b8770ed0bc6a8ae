namespace Transformers.ML;
