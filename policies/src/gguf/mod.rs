//! A reader for GGUF model files (the llama.cpp format, version 2 and 3).
//!
//! The header, the metadata and the tensor table are read eagerly when the file is opened;
//! tensor data is read on demand and dequantised to `f32` (see [`dequant`]). Every count and
//! length in the header is checked against the bytes actually left in the file before anything
//! is allocated, so a truncated or corrupt file gives an error naming what is wrong, never a
//! panic or a huge allocation.
//!
//! Why our own reader: the GGUF crates on crates.io either pull in a whole inference engine
//! (candle, llama-cpp bindings) or lack the K-quant dequantisers; the format is small and fixed.

pub mod dequant;
pub mod llama;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub use dequant::GgmlType;

/// The four bytes every GGUF file starts with.
const MAGIC: &[u8; 4] = b"GGUF";
/// Alignment of the tensor data section when `general.alignment` is absent.
const DEFAULT_ALIGNMENT: u64 = 32;
/// Nesting limit for arrays of arrays in metadata.
const MAX_ARRAY_DEPTH: usize = 4;
/// Largest number of dimensions a tensor may have (ggml's GGML_MAX_DIMS).
const MAX_DIMS: u32 = 4;

/// An error reading a GGUF file; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened or read.
    #[error("reading {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The header or metadata is malformed or truncated.
    #[error("{path}: malformed GGUF {what}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What was wrong, and where.
        what: String,
    },
    /// A tensor was asked for that the file does not hold.
    #[error("{path}: no tensor named `{name}`")]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
    },
    /// A tensor's data is stored in a type this reader does not dequantise.
    #[error("{path}: tensor `{name}` has type {ty}, which memrl cannot dequantise")]
    UnsupportedType {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The ggml type, by name or number.
        ty: String,
    },
    /// A tensor's data runs past the end of the file.
    #[error("{path}: tensor `{name}` is truncated: needs bytes {start}..{end}, file has {len}")]
    TruncatedTensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// First byte of the tensor's data.
        start: u64,
        /// One past its last byte.
        end: u64,
        /// The file's length.
        len: u64,
    },
    /// A metadata key needed to configure a model is missing or has the wrong type.
    #[error("{path}: metadata `{key}`: {expected}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What was expected.
        expected: String,
    },
}

/// One metadata value. Arrays may nest.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// `uint8`
    U8(u8),
    /// `int8`
    I8(i8),
    /// `uint16`
    U16(u16),
    /// `int16`
    I16(i16),
    /// `uint32`
    U32(u32),
    /// `int32`
    I32(i32),
    /// `uint64`
    U64(u64),
    /// `int64`
    I64(i64),
    /// `float32`
    F32(f32),
    /// `float64`
    F64(f64),
    /// `bool`
    Bool(bool),
    /// UTF-8 string (invalid UTF-8 is replaced, as tokenizer vocabularies sometimes hold raw bytes).
    String(String),
    /// Array of values of one type.
    Array(Vec<MetaValue>),
}

impl MetaValue {
    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a signed integer, if it is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            MetaValue::I8(v) => Some(v.into()),
            MetaValue::I16(v) => Some(v.into()),
            MetaValue::I32(v) => Some(v.into()),
            MetaValue::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }

    /// The value as a float, if it is a float or an integer.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v.into()),
            MetaValue::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    /// The value as a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The value as a string slice.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an array.
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// Where a tensor lives in the file and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// The tensor's name in the file, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// The shape in row-major (PyTorch) order: the reverse of ggml's `ne`.
    pub shape: Vec<usize>,
    /// How the data is stored.
    pub dtype: GgmlType,
    /// Byte offset of the data from the start of the file.
    pub offset: u64,
    /// Byte length of the data.
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// An open GGUF file: its metadata and tensor table, with data read on demand.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    version: u32,
    file_len: u64,
    metadata: BTreeMap<String, MetaValue>,
    tensors: Vec<TensorInfo>,
}

impl GgufFile {
    /// Opens `path` and reads its header, metadata and tensor table.
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        let io = |source| GgufError::Io { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let mut r = HeaderReader { inner: BufReader::new(file), pos: 0, len: file_len, path: path.to_path_buf() };
        let mut magic = [0u8; 4];
        r.read_exact(&mut magic, "magic")?;
        if &magic != MAGIC {
            return Err(r.malformed(format!("magic: expected `GGUF`, found {magic:?} (not a GGUF file)")));
        }
        let version = r.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(r.malformed(format!("version: expected 2 or 3, found {version}")));
        }
        let n_tensors = r.u64("tensor count")?;
        let n_kv = r.u64("metadata count")?;
        // Each key-value pair takes at least 12 bytes, each tensor entry at least 24.
        r.check_count(n_kv, 12, "metadata count")?;
        r.check_count(n_tensors, 24, "tensor count")?;

        let mut metadata = BTreeMap::new();
        for i in 0..n_kv {
            let key = r.string(&format!("metadata key #{i}"))?;
            let ty = r.u32(&format!("metadata `{key}` type"))?;
            let value = r.value(ty, &key, 0)?;
            metadata.insert(key, value);
        }

        let mut raw = Vec::with_capacity(n_tensors as usize);
        for i in 0..n_tensors {
            let name = r.string(&format!("tensor #{i} name"))?;
            let n_dims = r.u32(&format!("tensor `{name}` dimension count"))?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(r.malformed(format!("tensor `{name}`: {n_dims} dimensions, expected 1..={MAX_DIMS}")));
            }
            let mut ne = Vec::with_capacity(n_dims as usize);
            for d in 0..n_dims {
                ne.push(r.u64(&format!("tensor `{name}` dimension {d}"))?);
            }
            let ty = r.u32(&format!("tensor `{name}` type"))?;
            let offset = r.u64(&format!("tensor `{name}` offset"))?;
            raw.push((name, ne, ty, offset));
        }

        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() => a,
                _ => return Err(r.malformed(format!("general.alignment: expected a power of two, found {v:?}"))),
            },
        };
        let data_start = r.pos.div_ceil(alignment) * alignment;

        let mut tensors = Vec::with_capacity(raw.len());
        let mut names = std::collections::HashSet::with_capacity(raw.len());
        for (name, ne, ty, offset) in raw {
            if !names.insert(name.clone()) {
                return Err(r.malformed(format!("tensor `{name}` is listed twice")));
            }
            if offset % alignment != 0 {
                return Err(r.malformed(format!("tensor `{name}`: data offset {offset} is not a multiple of the alignment {alignment}")));
            }
            let dtype = GgmlType::from_u32(ty).ok_or_else(|| GgufError::UnsupportedType {
                path: path.to_path_buf(),
                name: printable(&name, MAX_QUOTED_CHARS),
                ty: ty.to_string(),
            })?;
            let mut n_elements: u64 = 1;
            for &d in &ne {
                n_elements = n_elements
                    .checked_mul(d)
                    .filter(|&n| n <= file_len.saturating_mul(8))
                    .ok_or_else(|| r.malformed(format!("tensor `{name}`: shape {ne:?} is impossibly large")))?;
            }
            if ne[0] % dtype.block_size() as u64 != 0 {
                return Err(r.malformed(format!(
                    "tensor `{name}`: first dimension {} is not a multiple of the {} block size {}",
                    ne[0],
                    dtype.name(),
                    dtype.block_size()
                )));
            }
            let n_bytes = n_elements / dtype.block_size() as u64 * dtype.block_bytes() as u64;
            let shape = ne.iter().rev().map(|&d| d as usize).collect();
            let Some(start) = data_start.checked_add(offset).filter(|start| start.checked_add(n_bytes).is_some()) else {
                return Err(r.malformed(format!("tensor `{name}`: data offset {offset} overflows")));
            };
            tensors.push(TensorInfo { name, shape, dtype, offset: start, n_bytes });
        }
        // Tensor data may not overlap: one tensor's bytes read as another's are garbage.
        let mut by_offset: Vec<&TensorInfo> = tensors.iter().filter(|t| t.n_bytes > 0).collect();
        by_offset.sort_by_key(|t| t.offset);
        for pair in by_offset.windows(2) {
            if pair[0].offset + pair[0].n_bytes > pair[1].offset {
                return Err(r.malformed(format!("the data of tensors `{}` and `{}` overlap", pair[0].name, pair[1].name)));
            }
        }
        Ok(GgufFile { path: path.to_path_buf(), version, file_len, metadata, tensors })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The GGUF format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// All metadata, by key.
    pub fn metadata(&self) -> &BTreeMap<String, MetaValue> {
        &self.metadata
    }

    /// One metadata value.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    /// The tensor table, in file order.
    pub fn tensor_infos(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The table entry of the tensor called `name`.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Reads the tensor called `name` and dequantises it to `f32`, in row-major order.
    pub fn read_tensor_f32(&self, name: &str) -> Result<Vec<f32>, GgufError> {
        let info = self.tensor_info(name).ok_or_else(|| GgufError::MissingTensor { path: self.path.clone(), name: name.to_string() })?;
        let end = info.offset + info.n_bytes;
        if end > self.file_len {
            return Err(GgufError::TruncatedTensor { path: self.path.clone(), name: name.to_string(), start: info.offset, end, len: self.file_len });
        }
        let io = |source| GgufError::Io { path: self.path.clone(), source };
        let mut file = File::open(&self.path).map_err(io)?;
        file.seek(SeekFrom::Start(info.offset)).map_err(io)?;
        let mut bytes = vec![0u8; info.n_bytes as usize];
        file.read_exact(&mut bytes).map_err(io)?;
        let mut out = vec![0f32; info.n_elements()];
        dequant::dequantize(info.dtype, &bytes, &mut out);
        Ok(out)
    }

    /// A metadata value that must be present and a non-negative integer.
    pub fn require_u64(&self, key: &str) -> Result<u64, GgufError> {
        self.get(key).and_then(MetaValue::as_u64).ok_or_else(|| self.metadata_error(key, "expected a non-negative integer"))
    }

    /// A metadata value that must be present and a number.
    pub fn require_f64(&self, key: &str) -> Result<f64, GgufError> {
        self.get(key).and_then(MetaValue::as_f64).ok_or_else(|| self.metadata_error(key, "expected a number"))
    }

    /// A metadata value that must be present and a string.
    pub fn require_str(&self, key: &str) -> Result<&str, GgufError> {
        self.get(key).and_then(MetaValue::as_str).ok_or_else(|| self.metadata_error(key, "expected a string"))
    }

    /// A metadata error naming this file and `key`.
    pub fn metadata_error(&self, key: &str, expected: &str) -> GgufError {
        let found = match self.get(key) {
            None => "missing".to_string(),
            Some(v) => format!("found {}", short_debug(v)),
        };
        GgufError::Metadata { path: self.path.clone(), key: key.to_string(), expected: format!("{expected}, {found}") }
    }
}

/// The most characters of a corrupt file's bytes an error quotes (a damaged length can turn
/// megabytes of tensor data into a "name").
pub(crate) const MAX_QUOTED_CHARS: usize = 300;

/// `text` with control characters escaped and cut after `max` characters.
pub(crate) fn printable(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] }).collect();
    if text.chars().nth(max).is_some() {
        out.push_str("...");
    }
    out
}

fn short_debug(v: &MetaValue) -> String {
    let s = format!("{v:?}");
    if s.len() > 80 { format!("{}…", &s[..s.floor_char_boundary(80)]) } else { s }
}

/// Reads the header section, tracking the position and the bytes left.
struct HeaderReader {
    inner: BufReader<File>,
    pos: u64,
    len: u64,
    path: PathBuf,
}

impl HeaderReader {
    fn malformed(&self, what: String) -> GgufError {
        GgufError::Malformed { path: self.path.clone(), what: printable(&what, MAX_QUOTED_CHARS) }
    }

    fn read_exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), GgufError> {
        if self.len - self.pos < buf.len() as u64 {
            return Err(self.malformed(format!("{what}: file ends at byte {} (truncated)", self.len)));
        }
        self.inner.read_exact(buf).map_err(|source| GgufError::Io { path: self.path.clone(), source })?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    /// Rejects a count whose items, at `min_bytes` each, could not fit in what is left.
    fn check_count(&self, count: u64, min_bytes: u64, what: &str) -> Result<(), GgufError> {
        let left = self.len - self.pos;
        if count.checked_mul(min_bytes).is_none_or(|need| need > left) {
            return Err(self.malformed(format!("{what}: {count} entries cannot fit in the {left} bytes left")));
        }
        Ok(())
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        let mut b = [0u8; 4];
        self.read_exact(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        let mut b = [0u8; 8];
        self.read_exact(&mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let n = self.u64(what)?;
        self.check_count(n, 1, what)?;
        let mut buf = vec![0u8; n as usize];
        self.read_exact(&mut buf, what)?;
        Ok(String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    fn value(&mut self, ty: u32, key: &str, depth: usize) -> Result<MetaValue, GgufError> {
        let mut b1 = [0u8; 1];
        let mut b2 = [0u8; 2];
        let mut b4 = [0u8; 4];
        let mut b8 = [0u8; 8];
        Ok(match ty {
            0 => {
                self.read_exact(&mut b1, key)?;
                MetaValue::U8(b1[0])
            }
            1 => {
                self.read_exact(&mut b1, key)?;
                MetaValue::I8(b1[0] as i8)
            }
            2 => {
                self.read_exact(&mut b2, key)?;
                MetaValue::U16(u16::from_le_bytes(b2))
            }
            3 => {
                self.read_exact(&mut b2, key)?;
                MetaValue::I16(i16::from_le_bytes(b2))
            }
            4 => {
                self.read_exact(&mut b4, key)?;
                MetaValue::U32(u32::from_le_bytes(b4))
            }
            5 => {
                self.read_exact(&mut b4, key)?;
                MetaValue::I32(i32::from_le_bytes(b4))
            }
            6 => {
                self.read_exact(&mut b4, key)?;
                MetaValue::F32(f32::from_le_bytes(b4))
            }
            7 => {
                self.read_exact(&mut b1, key)?;
                match b1[0] {
                    0 => MetaValue::Bool(false),
                    1 => MetaValue::Bool(true),
                    v => return Err(self.malformed(format!("metadata `{key}`: bool byte {v}, expected 0 or 1"))),
                }
            }
            8 => MetaValue::String(self.string(key)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.malformed(format!("metadata `{key}`: arrays nested deeper than {MAX_ARRAY_DEPTH}")));
                }
                let elem_ty = self.u32(key)?;
                let n = self.u64(key)?;
                self.check_count(n, 1, &format!("metadata `{key}` array length"))?;
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(elem_ty, key, depth + 1)?);
                }
                MetaValue::Array(items)
            }
            10 => {
                self.read_exact(&mut b8, key)?;
                MetaValue::U64(u64::from_le_bytes(b8))
            }
            11 => {
                self.read_exact(&mut b8, key)?;
                MetaValue::I64(i64::from_le_bytes(b8))
            }
            12 => {
                self.read_exact(&mut b8, key)?;
                MetaValue::F64(f64::from_le_bytes(b8))
            }
            other => return Err(self.malformed(format!("metadata `{key}`: unknown value type {other}"))),
        })
    }
}
