//! Just enough of the protobuf wire format to list an ONNX file's nodes and initializer shapes,
//! for cross-checking the zoo's tables against `../shared/models` without the ONNX crate.
//!
//! Fields read (onnx.proto): ModelProto.graph = 7; GraphProto.node = 1, .initializer = 5;
//! NodeProto.input = 1, .output = 2, .name = 3, .op_type = 4, .attribute = 5;
//! AttributeProto.name = 1, .i = 3, .ints = 8; TensorProto.dims = 1, .name = 8.

use std::collections::HashMap;

/// One field value of the wire format.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self) -> u64 {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.buf[self.pos];
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return value;
            }
        }
        panic!("varint longer than 10 bytes");
    }

    fn skip(&mut self, n: usize) -> &'a [u8] {
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        bytes
    }

    /// The next `(field number, value)`, or `None` at the end.
    fn field(&mut self) -> Option<(u64, Wire<'a>)> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let key = self.varint();
        let value = match key & 7 {
            0 => Wire::Varint(self.varint()),
            1 => {
                self.skip(8);
                Wire::Fixed
            }
            2 => {
                let n = self.varint() as usize;
                Wire::Bytes(self.skip(n))
            }
            5 => {
                self.skip(4);
                Wire::Fixed
            }
            t => panic!("unsupported wire type {t}"),
        };
        Some((key >> 3, value))
    }
}

fn string(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 string")
}

/// Appends a repeated int64 field, packed or not.
fn push_ints(out: &mut Vec<i64>, value: Wire<'_>) {
    match value {
        Wire::Varint(v) => out.push(v as i64),
        Wire::Bytes(b) => {
            let mut r = Reader::new(b);
            while r.pos < b.len() {
                out.push(r.varint() as i64);
            }
        }
        Wire::Fixed => panic!("int64 field with a fixed-size encoding"),
    }
}

/// An ONNX node: op type, name, inputs, outputs and its integer attributes.
pub struct Node {
    pub op_type: String,
    pub name: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub ints: HashMap<String, Vec<i64>>,
}

/// The nodes of a model's graph and the shapes of its initializers.
pub struct Graph {
    pub nodes: Vec<Node>,
    pub dims: HashMap<String, Vec<i64>>,
}

fn node(buf: &[u8]) -> Node {
    let mut n = Node {
        op_type: String::new(),
        name: String::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        ints: HashMap::new(),
    };
    let mut r = Reader::new(buf);
    while let Some((field, value)) = r.field() {
        match (field, value) {
            (1, Wire::Bytes(b)) => n.inputs.push(string(b)),
            (2, Wire::Bytes(b)) => n.outputs.push(string(b)),
            (3, Wire::Bytes(b)) => n.name = string(b),
            (4, Wire::Bytes(b)) => n.op_type = string(b),
            (5, Wire::Bytes(b)) => {
                let mut name = String::new();
                let mut ints = Vec::new();
                let mut a = Reader::new(b);
                while let Some((field, value)) = a.field() {
                    match (field, value) {
                        (1, Wire::Bytes(s)) => name = string(s),
                        (3, v) | (8, v) => push_ints(&mut ints, v),
                        _ => {}
                    }
                }
                n.ints.insert(name, ints);
            }
            _ => {}
        }
    }
    n
}

/// Parses the graph of an ONNX model file's bytes.
pub fn parse_model(bytes: &[u8]) -> Graph {
    let mut graph = Graph {
        nodes: Vec::new(),
        dims: HashMap::new(),
    };
    let mut r = Reader::new(bytes);
    while let Some((field, value)) = r.field() {
        let (7, Wire::Bytes(g)) = (field, value) else {
            continue;
        };
        let mut g = Reader::new(g);
        while let Some((field, value)) = g.field() {
            match (field, value) {
                (1, Wire::Bytes(b)) => graph.nodes.push(node(b)),
                (5, Wire::Bytes(b)) => {
                    let (mut name, mut dims) = (String::new(), Vec::new());
                    let mut t = Reader::new(b);
                    while let Some((field, value)) = t.field() {
                        match (field, value) {
                            (1, v) => push_ints(&mut dims, v),
                            (8, Wire::Bytes(s)) => name = string(s),
                            _ => {}
                        }
                    }
                    graph.dims.insert(name, dims);
                }
                _ => {}
            }
        }
    }
    graph
}

impl Graph {
    /// The name of the compute node behind `value`, looking through QuantizeLinear and
    /// DequantizeLinear (`input` for the graph input).
    pub fn producer(&self, value: &str) -> String {
        let mut value = value.to_string();
        loop {
            let Some(n) = self.nodes.iter().find(|n| n.outputs.contains(&value)) else {
                return value;
            };
            if matches!(n.op_type.as_str(), "QuantizeLinear" | "DequantizeLinear") {
                value = n.inputs[0].clone();
            } else {
                return n.name.clone();
            }
        }
    }
}
