//! Just enough of ONNX's protobuf format (onnx.proto3) to write a model: a graph of nodes
//! (standard ones and ONNX Runtime's `com.microsoft` contrib ops) with float, int8 and int64
//! initializers, one input and one output. Field numbers are onnx.proto's.

/// A protobuf message under construction.
#[derive(Default)]
pub struct Message(Vec<u8>);

impl Message {
    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint(((field as u64) << 3) | wire_type as u64);
    }
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.0.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.0.push(value as u8);
    }
    pub fn int(&mut self, field: u32, value: i64) -> &mut Self {
        self.key(field, 0);
        self.varint(value as u64);
        self
    }
    pub fn float(&mut self, field: u32, value: f32) -> &mut Self {
        self.key(field, 5);
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }
    pub fn bytes(&mut self, field: u32, value: &[u8]) -> &mut Self {
        self.key(field, 2);
        self.varint(value.len() as u64);
        self.0.extend_from_slice(value);
        self
    }
    pub fn string(&mut self, field: u32, value: &str) -> &mut Self {
        self.bytes(field, value.as_bytes())
    }
    pub fn message(&mut self, field: u32, value: &Message) -> &mut Self {
        self.bytes(field, &value.0)
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

const FLOAT: i64 = 1;
const INT8: i64 = 3;
const INT64: i64 = 7;

/// ONNX Runtime's contrib operators (e.g. `DynamicQuantizeMatMul`).
pub const MICROSOFT: &str = "com.microsoft";

/// An attribute of a node.
pub enum Attr<'a> {
    Int(&'a str, i64),
    Ints(&'a str, &'a [i64]),
    Float(&'a str, f32),
}

impl Attr<'_> {
    fn encode(&self) -> Message {
        // AttributeProto: name = 1, f = 2, i = 3, ints = 8, type = 20 (FLOAT 1, INT 2, INTS 7).
        let mut m = Message::default();
        match *self {
            Attr::Int(name, value) => m.string(1, name).int(3, value).int(20, 2),
            Attr::Float(name, value) => m.string(1, name).float(2, value).int(20, 1),
            Attr::Ints(name, values) => {
                m.string(1, name);
                for &v in values {
                    m.int(8, v);
                }
                m.int(20, 7)
            }
        };
        m
    }
}

/// A graph being written: nodes in topological order, initializers, one input, one output.
#[derive(Default)]
pub struct Graph {
    graph: Message,
    next_name: usize,
    /// Whether a node of ONNX Runtime's contrib domain was added (its opset is then imported).
    uses_microsoft: bool,
}

impl Graph {
    /// A fresh value name.
    pub fn name(&mut self, hint: &str) -> String {
        self.next_name += 1;
        format!("{hint}_{}", self.next_name)
    }

    /// Adds a node of the standard domain and returns the name of its single output.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: &[Attr]) -> String {
        self.node_in("", op, inputs, attrs)
    }

    /// Adds a node (NodeProto: input = 1, output = 2, name = 3, op_type = 4, attribute = 5,
    /// domain = 7) of `domain` and returns the name of its single output, which also names
    /// the node (tools such as ONNX Runtime's quantizer select nodes by name).
    pub fn node_in(&mut self, domain: &str, op: &str, inputs: &[&str], attrs: &[Attr]) -> String {
        let output = self.name(op);
        let mut node = Message::default();
        for input in inputs {
            node.string(1, input);
        }
        node.string(2, &output).string(3, &output).string(4, op);
        if !domain.is_empty() {
            node.string(7, domain);
            self.uses_microsoft |= domain == MICROSOFT;
        }
        for attr in attrs {
            node.message(5, &attr.encode());
        }
        self.graph.message(1, &node);
        output
    }

    /// A float initializer (TensorProto: dims = 1, data_type = 2, name = 8, raw_data = 9).
    pub fn floats(&mut self, hint: &str, dims: &[usize], values: &[f32]) -> String {
        assert_eq!(dims.iter().product::<usize>(), values.len(), "{hint}");
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(hint, dims, FLOAT, &raw)
    }

    /// An int8 initializer.
    pub fn int8s(&mut self, hint: &str, dims: &[usize], values: &[i8]) -> String {
        assert_eq!(dims.iter().product::<usize>(), values.len(), "{hint}");
        let raw: Vec<u8> = values.iter().map(|&v| v as u8).collect();
        self.initializer(hint, dims, INT8, &raw)
    }

    /// An int64 initializer; `dims` empty for a scalar.
    pub fn ints(&mut self, hint: &str, dims: &[usize], values: &[i64]) -> String {
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(hint, dims, INT64, &raw)
    }

    fn initializer(&mut self, hint: &str, dims: &[usize], data_type: i64, raw: &[u8]) -> String {
        let name = self.name(hint);
        let mut tensor = Message::default();
        for &d in dims {
            tensor.int(1, d as i64);
        }
        tensor.int(2, data_type).string(8, &name).bytes(9, raw);
        self.graph.message(5, &tensor);
        name
    }

    /// Declares a float graph input (field 11) or output (field 12); `None` dims are symbolic.
    fn value_info(&mut self, field: u32, name: &str, dims: &[Option<usize>]) {
        // ValueInfoProto{name 1, type 2}; TypeProto{tensor_type 1}; Tensor{elem_type 1, shape 2};
        // TensorShapeProto{dim 1}; Dimension{dim_value 1, dim_param 2}.
        let mut shape = Message::default();
        for (i, dim) in dims.iter().enumerate() {
            let mut d = Message::default();
            match dim {
                Some(v) => d.int(1, *v as i64),
                None => d.string(2, &format!("d{i}")),
            };
            shape.message(1, &d);
        }
        let mut tensor_type = Message::default();
        tensor_type.int(1, FLOAT).message(2, &shape);
        let mut type_proto = Message::default();
        type_proto.message(1, &tensor_type);
        let mut info = Message::default();
        info.string(1, name).message(2, &type_proto);
        self.graph.message(field, &info);
    }

    pub fn input(&mut self, name: &str, dims: &[Option<usize>]) {
        self.value_info(11, name, dims);
    }

    /// Names `value` as the graph's output `name` (through an Identity node).
    pub fn output(&mut self, value: &str, name: &str, dims: &[Option<usize>]) {
        let mut node = Message::default();
        node.string(1, value).string(2, name).string(4, "Identity");
        self.graph.message(1, &node);
        self.value_info(12, name, dims);
    }

    /// The serialised ModelProto: ir_version = 1, opset_import = 8, producer_name = 2, graph = 7.
    pub fn into_model(mut self, opset: i64) -> Vec<u8> {
        self.graph.string(2, "clip_vision");
        let mut opset_import = Message::default();
        opset_import.string(1, "").int(2, opset);
        let mut model = Message::default();
        model
            .int(1, 8)
            .string(2, "clip-investigator")
            .message(8, &opset_import);
        if self.uses_microsoft {
            let mut contrib = Message::default();
            contrib.string(1, MICROSOFT).int(2, 1);
            model.message(8, &contrib);
        }
        model.message(7, &self.graph);
        model.into_bytes()
    }
}
