// MSBuild task (compiled by RoslynCodeTaskFactory): marks one GLIBCXX version requirement of an
// ELF64 shared library as weak, when the system's libstdc++ does not provide that version.
// See Transformers.ML.targets for why.
using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class WeakenGlibcxxRequirement : Task
{
    [Required]
    public ITaskItem[] Files { get; set; }

    [Required]
    public string Version { get; set; }

    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlagWeak = 0x2;

    private static readonly string[] LibStdCxxCandidates =
    {
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/usr/lib64/libstdc++.so.6",
        "/lib64/libstdc++.so.6",
        "/usr/lib/libstdc++.so.6",
    };

    public override bool Execute()
    {
        string systemLib = Array.Find(LibStdCxxCandidates, File.Exists);
        if (systemLib != null && Contains(File.ReadAllBytes(systemLib), Encoding.ASCII.GetBytes(Version + "\0")))
        {
            Log.LogMessage(MessageImportance.Low, "{0} provides {1}; libLibTorchSharp.so left as shipped.", systemLib, Version);
            return true;
        }

        foreach (ITaskItem item in Files)
        {
            string path = item.ItemSpec;
            if (!File.Exists(path))
            {
                continue;
            }

            byte[] elf = File.ReadAllBytes(path);
            int changed;
            try
            {
                changed = Weaken(elf, Version);
            }
            catch (Exception e) when (e is InvalidDataException || e is ArgumentOutOfRangeException || e is IndexOutOfRangeException)
            {
                Log.LogError("Cannot patch '{0}': {1}", path, e.Message);
                return false;
            }

            if (changed == 0)
            {
                Log.LogMessage(MessageImportance.Low, "{0}: {1} already weak or not required.", path, Version);
                continue;
            }

            // Write beside the file, then rename: a failed build never leaves a half-written library.
            string temp = path + ".patching";
            File.WriteAllBytes(temp, elf);
            // (netstandard2.0, which task factories compile against, has no File.Move overwrite.)
            File.Copy(temp, path, overwrite: true);
            File.Delete(temp);
            Log.LogMessage(MessageImportance.Normal, "Marked {0} weak in {1} (system libstdc++ {2} lacks it).", Version, path, systemLib ?? "not found");
        }

        return true;
    }

    /// <summary>Sets VER_FLG_WEAK on every Elf64_Vernaux entry named <paramref name="version"/>; returns how many changed.</summary>
    private static int Weaken(byte[] elf, string version)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
        {
            throw new InvalidDataException("not an ELF file");
        }
        if (elf[4] != 2 || elf[5] != 1)
        {
            throw new InvalidDataException("expected a little-endian ELF64 file");
        }

        long shoff = (long)BitConverter.ToUInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A);
        int shnum = BitConverter.ToUInt16(elf, 0x3C);
        int changed = 0;
        for (int s = 0; s < shnum; s++)
        {
            long sh = shoff + (long)s * shentsize;
            if (BitConverter.ToUInt32(elf, (int)sh + 4) != ShtGnuVerneed)
            {
                continue;
            }

            long offset = (long)BitConverter.ToUInt64(elf, (int)sh + 0x18);
            uint link = BitConverter.ToUInt32(elf, (int)sh + 0x28);
            uint count = BitConverter.ToUInt32(elf, (int)sh + 0x2C);
            long strtab = (long)BitConverter.ToUInt64(elf, (int)(shoff + link * shentsize + 0x18));

            long verneed = offset;
            for (uint n = 0; n < count; n++)
            {
                ushort auxCount = BitConverter.ToUInt16(elf, (int)verneed + 2);
                long aux = verneed + BitConverter.ToUInt32(elf, (int)verneed + 8);
                for (int a = 0; a < auxCount; a++)
                {
                    uint name = BitConverter.ToUInt32(elf, (int)aux + 8);
                    if (ReadCString(elf, strtab + name) == version)
                    {
                        ushort flags = BitConverter.ToUInt16(elf, (int)aux + 4);
                        if ((flags & VerFlagWeak) == 0)
                        {
                            flags |= VerFlagWeak;
                            elf[aux + 4] = (byte)(flags & 0xff);
                            elf[aux + 5] = (byte)(flags >> 8);
                            changed++;
                        }
                    }
                    aux += BitConverter.ToUInt32(elf, (int)aux + 12);
                }
                verneed += BitConverter.ToUInt32(elf, (int)verneed + 12);
            }
        }
        return changed;
    }

    private static string ReadCString(byte[] data, long start)
    {
        long end = start;
        while (data[end] != 0)
        {
            end++;
        }
        return Encoding.ASCII.GetString(data, (int)start, (int)(end - start));
    }

    private static bool Contains(byte[] haystack, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= haystack.Length; i++)
        {
            int j = 0;
            while (j < needle.Length && haystack[i + j] == needle[j])
            {
                j++;
            }
            if (j == needle.Length)
            {
                return true;
            }
        }
        return false;
    }
}
