fn main() { println!("hello from gemini"); }
