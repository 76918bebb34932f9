//! Loader tests on small PTX snippets and on every module the build produced, with a resolver that accepts every
//! arithmetic spelling (except `frob*`), so they do not depend on `alu`.

use super::{LoadError, load_with};
use crate::ir::{
    AddrBase, Address, AtomOp, BoolOp, Class, Function, Module, Op, Operand, ShflMode, Space, Special, Ty,
};
use crate::ir::{AluFn, VoteMode};
use crate::memory::SHARED_WINDOW;
use std::cell::RefCell;

fn zero(_: &[u64; 4], _: &mut bool) -> u64 {
    0
}

fn permissive(spec: &str) -> Result<(AluFn, Class), String> {
    if spec.starts_with("frob") { Err(format!("{spec}: not supported")) } else { Ok((zero, Class::Arith)) }
}

const HEADER: &str = ".version 9.0\n.target sm_80\n.address_size 64\n";

fn load(body: &str) -> Result<Module, LoadError> {
    load_with(&format!("{HEADER}{body}"), &permissive)
}

fn kernel(body: &str) -> Function {
    let module = load(body).unwrap_or_else(|e| panic!("{e}"));
    module.kernels.into_iter().next().expect("a kernel")
}

fn ops(f: &Function) -> Vec<Op> {
    f.insts.iter().map(|i| i.op.clone()).collect()
}

fn at(base: AddrBase, offset: i64) -> Address {
    Address { base, offset }
}

#[test]
fn registers_labels_params_and_predicated_branches() {
    let f = kernel(
        "
.visible .entry k(
\t.param .u64 k_param_0,
\t.param .u32 k_param_1,
\t.param .align 8 .b8 k_param_2[12]
)
.maxntid 128, 1, 1
{
\t.reg .pred \t%p<3>;
\t.reg .b32 \t%r<5>;
\t.reg .b64 \t%rd<4>;
\tld.param.u64 \t%rd1, [k_param_0];
\tld.param.u32 \t%r1, [k_param_2+4];
\tmov.u32 \t%r2, %tid.x;
\tsetp.ge.s32 \t%p1, %r2, %r1;
\t@%p1 bra \t$L__BB0_2;
\tadd.s32 %r3, %r2, -1;
\t@!%p2 bra.uni $L__BB0_2;
$L__BB0_2:
\tret;
}
",
    );
    let offsets: Vec<(u32, u32, u32)> = f.params.iter().map(|p| (p.offset, p.size, p.align)).collect();
    assert_eq!(offsets, [(0, 8, 8), (8, 4, 4), (16, 12, 8)]);
    assert_eq!(f.param_bytes, 28);
    assert_eq!(f.nregs, 3 + 5 + 4);
    assert_eq!(f.reg_names[4], "%r1");
    assert_eq!(f.max_threads, Some([128, 1, 1]));
    let ops = ops(&f);
    assert!(matches!(&ops[0], Op::Ld { space: Space::Param, ty: Ty::U64, dsts, addr, .. }
        if dsts == &[Some(9)] && *addr == at(AddrBase::None, 0)));
    assert!(matches!(&ops[1], Op::Ld { space: Space::Param, addr, .. } if *addr == at(AddrBase::None, 20)));
    assert!(matches!(ops[2], Op::Mov { dst: 5, src: Operand::Special(Special::Tid(0)) }));
    assert!(matches!(
        ops[3],
        Op::Setp { dst: 1, dst_not: None, a: Operand::Reg(5), b: Operand::Reg(4), combine: None, .. }
    ));
    assert!(matches!(ops[4], Op::Bra { target: 7 }));
    assert!(matches!(&ops[5], Op::Alu { dst: 6, srcs, nsrc: 2, name: "add.s32", .. }
        if srcs[..2] == [Operand::Reg(5), Operand::Imm(0xFFFF_FFFF)]));
    assert!(matches!(ops[7], Op::Ret));
    let guards: Vec<_> = f.insts.iter().map(|i| i.guard).collect();
    assert_eq!(guards[4], Some((1, false)));
    assert_eq!(guards[6], Some((2, true)));
    assert_eq!(f.insts[0].line, 15);
    assert_eq!(f.insts[7].line, 23);
    assert_eq!(f.insts[0].class, Class::Memory);
    assert_eq!(f.insts[4].class, Class::Control);
    let starts: Vec<usize> = (0..f.insts.len()).filter(|&i| f.block_start[i]).collect();
    assert_eq!(starts, [0, 7]);
}

#[test]
fn vectors_pack_unpack_and_scoped_registers() {
    let f = kernel(
        "
.visible .entry k()
{
\t.reg .b16 %rs<3>;
\t.reg .b32 %r<6>;
\t.reg .f32 %f<3>;
\t.reg .b64 %rd<3>;
\tld.global.nc.v4.u32 {%r1, %r2, %r3, _}, [%rd1+16];
\tst.shared.v4.u32 [%r2+-4], {%r1, 7, %r3, %r4};
\t{ mov.b32 %f1, {0,%rs1};}
\tmov.b64 %rd2, {%r1, %r2};
\t{
\t.reg .b32 %r1;
\tmov.b64 {%r1, %r5}, %rd2;
\t}
\tmov.b32 {%rs1, _}, %r1;
\t{  cvt.rn.bf16.f32 %rs2, %f1;}
\tret;
}
",
    );
    // %rs0-2: 0-2, %r0-5: 3-8, %f0-2: 9-11, %rd0-2: 12-14, the inner %r1: 15.
    assert_eq!(f.nregs, 16);
    let ops = ops(&f);
    assert!(matches!(&ops[0], Op::Ld { space: Space::Global, ty: Ty::U32, dsts, addr, .. }
        if dsts == &[Some(4), Some(5), Some(6), None] && *addr == at(AddrBase::Reg(13), 16)));
    assert!(matches!(&ops[1], Op::St { space: Space::Shared, srcs, addr, .. }
        if srcs == &[Operand::Reg(4), Operand::Imm(7), Operand::Reg(6), Operand::Reg(7)]
            && *addr == at(AddrBase::Reg(5), -4)));
    assert!(
        matches!(&ops[2], Op::Pack { dst: 10, srcs, elem_bits: 16 } if srcs == &[Operand::Imm(0), Operand::Reg(1)])
    );
    assert!(matches!(&ops[3], Op::Pack { dst: 14, elem_bits: 32, .. }));
    assert!(
        matches!(&ops[4], Op::Unpack { dsts, src: Operand::Reg(14), elem_bits: 32 } if dsts == &[Some(15), Some(8)])
    );
    assert!(matches!(&ops[5], Op::Unpack { dsts, src: Operand::Reg(4), elem_bits: 16 } if dsts == &[Some(1), None]));
    assert!(matches!(&ops[6], Op::Alu { dst: 2, nsrc: 1, name: "cvt.rn.bf16.f32", .. }));
}

#[test]
fn immediates_of_each_kind() {
    let f = kernel(
        "
.visible .entry k()
{
\t.reg .b16 %rs<2>;
\t.reg .b32 %r<3>;
\t.reg .f32 %f<2>;
\t.reg .b64 %rd<2>;
\t.reg .f64 %fd<2>;
\tmov.f32 %f1, 0f3F800000;
\tmov.f64 %fd1, 0d3FF0000000000000;
\tmov.u64 %rd1, 0xFF;
\tmov.u32 %r1, -5;
\tmov.u16 %rs1, -1;
\tand.b64 %rd1, %rd1, -4294967296;
\tmul.wide.s32 %rd1, %r1, -2;
\tshl.b64 %rd1, %rd1, 3;
\tbfi.b32 %r1, %r2, %r1, 5, 27;
\tadd.f64 %fd1, %fd1, 0f3F800000;
\tret;
}
",
    );
    let ops = ops(&f);
    let src = |i: usize| match &ops[i] {
        Op::Mov { src, .. } => vec![*src],
        Op::Alu { srcs, nsrc, .. } => srcs[..*nsrc as usize].to_vec(),
        op => panic!("{op:?}"),
    };
    assert_eq!(src(0), [Operand::Imm(0x3F80_0000)]);
    assert_eq!(src(1), [Operand::Imm(0x3FF0_0000_0000_0000)]);
    assert_eq!(src(2), [Operand::Imm(0xFF)]);
    assert_eq!(src(3), [Operand::Imm(0xFFFF_FFFB)]);
    assert_eq!(src(4), [Operand::Imm(0xFFFF)]);
    assert_eq!(src(5)[1], Operand::Imm(0xFFFF_FFFF_0000_0000));
    assert_eq!(src(6)[1], Operand::Imm(0xFFFF_FFFE));
    assert_eq!(src(7)[1], Operand::Imm(3));
    assert_eq!(src(8)[2..], [Operand::Imm(5), Operand::Imm(27)]);
    assert_eq!(src(9)[1], Operand::Imm(1.0f64.to_bits()));
}

#[test]
fn setp_forms_and_warp_collectives() {
    let specs = RefCell::new(Vec::new());
    let resolve = |spec: &str| {
        specs.borrow_mut().push(spec.to_owned());
        permissive(spec)
    };
    let text = format!(
        "{HEADER}
.visible .entry k()
{{
\t.reg .pred %p<4>;
\t.reg .b32 %r<8>;
\t.reg .f32 %f<8>;
\t.reg .b64 %rd<3>;
\tsetp.lt.and.s32 %p1|%p2, %r1, %r2, !%p3;
\tsetp.geu.ftz.f32 %p1, %f1, 0f00000000;
\tshfl.sync.up.b32 %r2|%p1, %r1, 1, 0, -1;
\tshfl.sync.bfly.b32 %r2, %r1, 16, 31, -1;
\tvote.sync.ballot.b32 %r3, %p1, -1;
\tmatch.any.sync.b32 %r4, %r3, -1;
\tatom.shared.add.u32 %r1, [%r2], 1;
\tatom.global.max.u64 %rd1, [%rd2+8], %rd1;
\tbar.sync 0;
\tmma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {{%f1,%f2,%f3,%f4}}, {{%r1,%r2,%r3,%r4}}, {{%r5,%r6}}, {{%f5,%f6,%f7,0f00000000}};
\tselp.b32 %r1, 1, %r2, %p1;
\tcvta.to.global.u64 %rd1, %rd2;
\tret;
}}
"
    );
    let module = load_with(&text, &resolve).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(*specs.borrow(), ["setp.lt.s32", "setp.geu.ftz.f32"]);
    let f = &module.kernels[0];
    let ops = ops(f);
    assert!(matches!(
        ops[0],
        Op::Setp { dst: 1, dst_not: Some(2), combine: Some((BoolOp::And, Operand::NotPred(3))), .. }
    ));
    assert!(matches!(ops[1], Op::Setp { b: Operand::Imm(0), combine: None, .. }));
    assert!(matches!(
        ops[2],
        Op::Shfl { mode: ShflMode::Up, dst: 6, dst_pred: Some(1), mask: Operand::Imm(0xFFFF_FFFF), .. }
    ));
    assert!(matches!(
        ops[3],
        Op::Shfl { mode: ShflMode::Bfly, dst_pred: None, b: Operand::Imm(16), c: Operand::Imm(31), .. }
    ));
    assert!(matches!(ops[4], Op::Vote { mode: VoteMode::Ballot, dst: 7, pred: Operand::Reg(1), .. }));
    assert!(matches!(ops[5], Op::Match { all: false, bits: 32, dst: 8, dst_pred: None, a: Operand::Reg(7), .. }));
    assert!(matches!(
        ops[6],
        Op::Atom {
            space: Space::Shared,
            op: AtomOp::Add,
            ty: Ty::U32,
            dst: Some(5),
            addr: Address { base: AddrBase::Reg(6), offset: 0 },
            a: Operand::Imm(1),
            b: None
        }
    ));
    assert!(matches!(
        ops[7],
        Op::Atom {
            space: Space::Global,
            op: AtomOp::Max,
            ty: Ty::U64,
            addr: Address { base: AddrBase::Reg(22), offset: 8 },
            ..
        }
    ));
    assert!(matches!(ops[8], Op::Bar { id: Operand::Imm(0), count: None, wait: true, aligned: true }));
    assert!(matches!(
        ops[9],
        Op::Mma {
            bf16: true,
            d: [13, 14, 15, 16],
            a: [5, 6, 7, 8],
            b: [9, 10],
            c: [Operand::Reg(17), Operand::Reg(18), Operand::Reg(19), Operand::Imm(0)]
        }
    ));
    assert!(matches!(ops[10], Op::Selp { dst: 5, a: Operand::Imm(1), b: Operand::Reg(6), pred: Operand::Reg(1) }));
    assert!(matches!(
        ops[11],
        Op::Cvta { dst: 21, src: Operand::Reg(22), space: Space::Global, to_generic: false, bits: 64 }
    ));
    let classes: Vec<Class> = f.insts.iter().map(|i| i.class).collect();
    assert_eq!(
        classes[2..10],
        [
            Class::Collective,
            Class::Collective,
            Class::Collective,
            Class::Collective,
            Class::Memory,
            Class::Memory,
            Class::Control,
            Class::Tensor
        ]
    );
}

#[test]
fn shared_local_and_global_layout() {
    let module = load(
        "
.extern .shared .align 16 .b8 image[];
.global .align 8 .b8 table[6] = {1, 2, 3};
.shared .align 4 .b8 unused[64];
.shared .align 8 .b8 counts[12];

.visible .entry k()
{
\t.local .align 16 .b8 __local_depot0[40];
\t.reg .b32 %r<4>;
\t.reg .b64 %rd<4>;
\t.reg .b64 %SP;
\t.reg .b64 %SPL;
\t.shared .align 4 .b8 _ZZ1kE7scratch[20];
\tmov.u64 %SPL, __local_depot0;
\tcvta.local.u64 %SP, %SPL;
\tmov.u32 %r1, counts;
\tmov.u32 %r2, _ZZ1kE7scratch;
\tmov.u32 %r3, image;
\tld.shared.u32 %r1, [_ZZ1kE7scratch+4];
\tmov.u64 %rd1, table;
\tld.global.u8 %r1, [table+2];
\tld.local.u32 %r1, [__local_depot0+8];
\tld.u32 %r1, [counts+4];
\tret;
}
",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(module.globals.len(), 1);
    let g = &module.globals[0];
    assert_eq!(
        (g.name.as_str(), g.space, g.bytes, g.align, g.init.as_slice()),
        ("table", Space::Global, 6, 8, &[1, 2, 3][..])
    );
    let f = &module.kernels[0];
    // `counts` (declared first) at 0, `scratch` at 12; `unused` is not referenced.
    assert_eq!(f.static_shared, 32);
    assert_eq!(f.dynamic_shared_offset, 32);
    assert_eq!(f.local_bytes, 40);
    let ops = ops(f);
    assert!(matches!(ops[0], Op::Mov { src: Operand::Imm(0), .. }));
    assert!(matches!(ops[1], Op::Cvta { space: Space::Local, to_generic: true, bits: 64, .. }));
    assert!(matches!(ops[2], Op::Mov { src: Operand::Imm(0), .. }));
    assert!(matches!(ops[3], Op::Mov { src: Operand::Imm(12), .. }));
    assert!(matches!(ops[4], Op::Mov { src: Operand::Imm(32), .. }));
    assert!(matches!(&ops[5], Op::Ld { space: Space::Shared, addr, .. } if *addr == at(AddrBase::None, 16)));
    assert!(matches!(ops[6], Op::Mov { src: Operand::GlobalAddr(0), .. }));
    assert!(
        matches!(&ops[7], Op::Ld { space: Space::Global, ty: Ty::U8, addr, .. } if *addr == at(AddrBase::Global(0), 2))
    );
    assert!(matches!(&ops[8], Op::Ld { space: Space::Local, addr, .. } if *addr == at(AddrBase::None, 8)));
    let generic = SHARED_WINDOW as i64 + 4;
    assert!(matches!(&ops[9], Op::Ld { space: Space::Generic, addr, .. } if *addr == at(AddrBase::None, generic)));
}

#[test]
fn dynamic_shared_rounds_up_to_sixteen() {
    let module = load(
        "
.extern .shared .align 4 .b8 dyn[];
.visible .entry k()
{
\t.reg .b32 %r<2>;
\t.shared .align 4 .b8 s[20];
\tmov.u32 %r1, s;
\tmov.u32 %r1, dyn;
\tret;
}
",
    )
    .unwrap();
    let f = &module.kernels[0];
    assert_eq!((f.static_shared, f.dynamic_shared_offset), (20, 32));
    assert!(matches!(f.insts[1].op, Op::Mov { src: Operand::Imm(32), .. }));
}

const CALL: &str = "
.func  (.param .align 8 .b8 func_retval0[16]) slowpath
(
\t.param .b64 slowpath_param_0
)
;

.visible .entry k(
\t.param .u64 k_param_0
)
{
\t.local .align 16 .b8 __local_depot0[24];
\t.reg .b32 %r<3>;
\t.reg .f64 %fd<3>;
\tmov.f64 %fd1, 0d3FF0000000000000;
\t{ // callseq 0, 0
\t.reg .b32 temp_param_reg;
\t.param .b64 param0;
\tst.param.f64 \t[param0+0], %fd1;
\t.param .align 8 .b8 retval0[16];
\tcall.uni (retval0), 
\tslowpath, 
\t(
\tparam0
\t);
\tld.param.f64 \t%fd2, [retval0+0];
\tld.param.b32 \t%r1, [retval0+8];
\t} // callseq 0
\tret;
}
.func  (.param .align 8 .b8 func_retval0[16]) slowpath(
\t.param .b64 slowpath_param_0
)
{
\t.local .align 8 .b8 \t__local_depot1[40];
\t.reg .b32 %r<2>;
\t.reg .f64 %fd<2>;
\tld.param.f64 %fd1, [slowpath_param_0];
\t@%r1 bra $L__BB1_2;
\tst.param.f64 [func_retval0+0], %fd1;
$L__BB1_2:
\tst.param.b32 [func_retval0+8], %r1;
\tret;
}
";

#[test]
fn calls_link_the_callee_with_its_slots_in_local_memory() {
    let f = kernel(CALL);
    // Locals: depot0 at 0..24, depot1 at 24..64; the callee's parameter at 64, its return value at 72..88.
    assert_eq!(f.local_bytes, 88);
    // The kernel: %r0-2 (0-2), %fd0-2 (3-5), temp_param_reg (6); the callee: %r0-1 (7-8), %fd0-1 (9-10).
    assert_eq!(f.nregs, 11);
    let ops = ops(&f);
    assert_eq!(ops.len(), 11);
    assert!(
        matches!(&ops[1], Op::St { space: Space::Local, ty: Ty::F64, addr, .. } if *addr == at(AddrBase::None, 64))
    );
    assert!(matches!(ops[2], Op::Call { target: 6 }));
    assert!(matches!(&ops[3], Op::Ld { space: Space::Local, addr, .. } if *addr == at(AddrBase::None, 72)));
    assert!(matches!(&ops[4], Op::Ld { space: Space::Local, ty: Ty::B32, dsts, addr, .. }
        if *addr == at(AddrBase::None, 80) && dsts == &[Some(1)]));
    assert!(matches!(ops[5], Op::Ret));
    assert!(matches!(&ops[6], Op::Ld { space: Space::Local, dsts, addr, .. }
        if *addr == at(AddrBase::None, 64) && dsts == &[Some(10)]));
    assert!(matches!(ops[7], Op::Bra { target: 9 }));
    assert!(matches!(&ops[8], Op::St { space: Space::Local, addr, .. } if *addr == at(AddrBase::None, 72)));
    assert!(matches!(&ops[9], Op::St { space: Space::Local, srcs, addr, .. }
        if *addr == at(AddrBase::None, 80) && srcs == &[Operand::Reg(8)]));
    assert!(matches!(ops[10], Op::Ret));
    let starts: Vec<usize> = (0..f.insts.len()).filter(|&i| f.block_start[i]).collect();
    assert_eq!(starts, [0, 6, 9]);
}

#[test]
fn recursion_is_an_error() {
    let err = load(
        "
.func f()
{
\tcall f;
\tret;
}
.visible .entry k()
{
\tcall f;
\tret;
}
",
    )
    .unwrap_err();
    assert!(err.message.contains("recursive"), "{err}");
    assert_eq!(err.line, 7);
}

fn error(body: &str) -> LoadError {
    load(&format!(".visible .entry k()\n{{\n\t.reg .b32 %r<3>;\n{body}\n\tret;\n}}\n")).unwrap_err()
}

#[test]
fn unsupported_instructions_and_forms_name_the_line() {
    let err = error("\tadd.s32 %r1, %r2, %r2;\n\tfrob.b32 %r1, %r2;");
    assert_eq!((err.line, err.function.as_deref()), (8, Some("k")));
    assert!(err.message.contains("frob.b32 %r1, %r2;"), "{err}");
    for (body, needle) in [
        ("\tld.global.bogus.u32 %r1, [%r2];", "bogus"),
        ("\t.maxnreg 3;", "maxnreg"),
        ("\tbar.red.popc.u32 %r1, 0, %p1;", "bar.red"),
        ("\tmov.u32 %r1, %r9;", "%r9"),
        ("\tmov.u32 %r1, 0f3F800000;", "floating-point"),
        ("\tbra $L__nowhere;", "$L__nowhere"),
        ("\tbra $L__end;\n$L__end:\n}\n.visible .entry k2()\n{", "no instruction after it"),
        ("\tmov.b32 %r1, {%r1, %r2, %r1};", "3 parts"),
        ("\tld.global.v4.u32 {%r1, %r2}, [%r2];", "4 values"),
        ("\tst.global.u32 [missing], %r1;", "missing"),
        ("\tmov.u32 %r1, 5000000000;", "does not fit"),
    ] {
        let err = error(body);
        assert_eq!((err.line, err.function.as_deref()), (7, Some("k")), "{body}: {err}");
        assert!(err.message.contains(needle), "{body}: {err}");
    }
    let err = load(".visible .entry k()\n{\n\tret;\n}\n.weird 3;\n").unwrap_err();
    assert_eq!((err.line, err.function), (8, None));
}

#[test]
fn debug_sections_pragmas_and_loc_are_skipped() {
    let f = kernel(
        "
.visible .entry k()
{
\t.loc\t1 5 0
\t.pragma \"nounroll\";
\tret;
}
\t.file\t1 \"/work/x.cu\"
\t.section\t.debug_str
\t{
$L__info_string0:
.b8 95,90,54,0
\t}
",
    );
    assert_eq!(f.insts.len(), 1);
}

/// What must hold of any lowered kernel: registers within the file, targets within the list, symbol-folded
/// addresses within their space.
fn check(f: &Function) {
    assert_eq!(f.block_start.len(), f.insts.len());
    assert_eq!(f.reg_names.len(), f.nregs as usize);
    let reg = |r: u32| assert!(r < f.nregs, "{}: register {r} of {}", f.name, f.nregs);
    let operand = |o: &Operand| {
        if let Operand::Reg(r) | Operand::NotPred(r) = o {
            reg(*r)
        }
    };
    let access = |space: Space, addr: &Address, bytes: u32| {
        if let AddrBase::Reg(r) = addr.base {
            return reg(r);
        }
        let end = (addr.offset + bytes as i64) as u32;
        match (space, addr.base) {
            (Space::Param, AddrBase::None) => assert!(end <= f.param_bytes, "{}: param {addr:?}", f.name),
            (Space::Local, AddrBase::None) => assert!(end <= f.local_bytes, "{}: local {addr:?}", f.name),
            (Space::Shared, AddrBase::None) => assert!(end <= f.static_shared, "{}: shared {addr:?}", f.name),
            (Space::Global, AddrBase::Global(_)) => {}
            _ => panic!("{}: {space:?} access at {addr:?}", f.name),
        }
    };
    for inst in &f.insts {
        assert!(inst.line > 0);
        if let Some((p, _)) = inst.guard {
            reg(p);
        }
        match &inst.op {
            Op::Mov { dst, src } => {
                reg(*dst);
                operand(src);
            }
            Op::Pack { dst, srcs, .. } => {
                reg(*dst);
                srcs.iter().for_each(operand);
            }
            Op::Unpack { dsts, src, .. } => {
                dsts.iter().flatten().for_each(|r| reg(*r));
                operand(src);
            }
            Op::Alu { dst, srcs, nsrc, .. } => {
                reg(*dst);
                srcs[..*nsrc as usize].iter().for_each(operand);
            }
            Op::Ld { space, ty, dsts, addr, .. } => {
                dsts.iter().flatten().for_each(|r| reg(*r));
                access(*space, addr, ty.bytes() * dsts.len() as u32);
            }
            Op::St { space, ty, srcs, addr } => {
                srcs.iter().for_each(operand);
                access(*space, addr, ty.bytes() * srcs.len() as u32);
            }
            Op::Atom { space, ty, addr, .. } => access(*space, addr, ty.bytes()),
            Op::Bra { target } | Op::Call { target } => {
                assert!((*target as usize) < f.insts.len() && f.block_start[*target as usize])
            }
            _ => {}
        }
    }
}

#[test]
fn every_built_module_loads() {
    let Some(modules) = crate::project_kernels::all() else { return };
    for built in modules {
        let module = load_with(built.ptx, &permissive).unwrap_or_else(|e| panic!("{}: {e}", built.name));
        assert_eq!((module.version, module.target.as_str()), ((8, 2), "sm_80"));
        assert!(!built.entries.is_empty(), "{}: no entries listed", built.name);
        for entry in built.entries {
            let k = module.kernel(entry).unwrap_or_else(|| panic!("{}: kernel {entry} missing", built.name));
            check(&module.kernels[k]);
        }
    }
}

/// The same through `alu::resolve`: every arithmetic instruction the kernels use has its function.
#[test]
fn every_built_module_resolves_through_the_alu() {
    let Some(modules) = crate::project_kernels::all() else { return };
    for built in modules {
        super::load(built.ptx).unwrap_or_else(|e| panic!("{}: {e}", built.name));
    }
}
