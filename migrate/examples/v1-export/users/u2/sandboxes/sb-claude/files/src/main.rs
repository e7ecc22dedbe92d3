fn main() { println!("hello from claude"); }
