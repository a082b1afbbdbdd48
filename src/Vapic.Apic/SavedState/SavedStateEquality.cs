using System.Collections.Immutable;

namespace Vapic.Apic.SavedState;

/// <summary>Value equality for the arrays inside saved-state records (records compare arrays by reference).</summary>
public static class SavedStateEquality
{
    /// <summary>
    /// True when both arrays are uninitialized, or both are initialized with equal elements in the
    /// same order.
    /// </summary>
    public static bool SequenceEqual<T>(ImmutableArray<T> left, ImmutableArray<T> right)
    {
        if (left.IsDefault || right.IsDefault)
        {
            return left.IsDefault && right.IsDefault;
        }

        if (left.Length != right.Length)
        {
            return false;
        }

        EqualityComparer<T> comparer = EqualityComparer<T>.Default;
        for (int i = 0; i < left.Length; i++)
        {
            if (!comparer.Equals(left[i], right[i]))
            {
                return false;
            }
        }

        return true;
    }
}
